//! What the interpreter reads from an image before it runs: the special objects, the layout
//! of method headers and class formats.
//!
//! Two object formats are read: Squeak V3 (6502 pre-closure, 6504/6505 closures) and Spur,
//! 32-bit (6521, and 7033 as Squeak 6 saves it) and 64-bit (68021, and 68533). Which one, and the word size, is decided once per image,
//! from the base's `image.version` root, in [`Specials::read`]; the headers and formats of
//! the two are decoded into the same [`MethodHeader`] and [`ClassFormat`], so nothing after
//! the decode asks which it is.

use crate::bytecodes::CALL_PRIMITIVE;
use crate::error::{Result, VmError};
use crate::memory::ObjectMemory;
use cowheap_heap::{Value, Word};

/// Special objects array indices (0-based; Squeak V3 and Spur alike, except where noted).
pub mod special {
    /// nil.
    pub const NIL: usize = 0;
    /// false.
    pub const FALSE: usize = 1;
    /// true.
    pub const TRUE: usize = 2;
    /// The association whose value is the ProcessorScheduler (`Processor`).
    pub const SCHEDULER_ASSOCIATION: usize = 3;
    /// SmallInteger.
    pub const CLASS_SMALL_INTEGER: usize = 5;
    /// String.
    pub const CLASS_STRING: usize = 6;
    /// Array.
    pub const CLASS_ARRAY: usize = 7;
    /// Smalltalk (the SystemDictionary), nil in some images.
    pub const SMALLTALK: usize = 8;
    /// Float.
    pub const CLASS_FLOAT: usize = 9;
    /// MethodContext (Spur: `Context`, the one class of method and block contexts).
    pub const CLASS_METHOD_CONTEXT: usize = 10;
    /// BlockContext (Spur: unused, nil).
    pub const CLASS_BLOCK_CONTEXT: usize = 11;
    /// Point.
    pub const CLASS_POINT: usize = 12;
    /// LargePositiveInteger.
    pub const CLASS_LARGE_POSITIVE: usize = 13;
    /// Message.
    pub const CLASS_MESSAGE: usize = 15;
    /// Semaphore.
    pub const CLASS_SEMAPHORE: usize = 18;
    /// CompiledMethod.
    pub const CLASS_COMPILED_METHOD: usize = 16;
    /// Character.
    pub const CLASS_CHARACTER: usize = 19;
    /// #doesNotUnderstand:.
    pub const SELECTOR_DNU: usize = 20;
    /// #cannotReturn:.
    pub const SELECTOR_CANNOT_RETURN: usize = 21;
    /// The special selectors: 32 pairs of selector and argument count.
    pub const SPECIAL_SELECTORS: usize = 23;
    /// The 256 Characters (V3; Spur characters are immediates and this is nil).
    pub const CHARACTER_TABLE: usize = 24;
    /// The semaphore the timer signals (`TheTimerSemaphore`).
    pub const TIMER_SEMAPHORE: usize = 29;
    /// The semaphore the collector signals when it clears weak slots
    /// (`TheFinalizationSemaphore`).
    pub const FINALIZATION_SEMAPHORE: usize = 41;
    /// #mustBeBoolean.
    pub const SELECTOR_MUST_BE_BOOLEAN: usize = 25;
    /// BlockClosure (closure images).
    pub const CLASS_BLOCK_CLOSURE: usize = 36;
    /// LargeNegativeInteger (41 is the finalization semaphore).
    pub const CLASS_LARGE_NEGATIVE: usize = 42;
    /// #aboutToReturn:through: (images with unwind blocks).
    pub const SELECTOR_ABOUT_TO_RETURN: usize = 48;
}

/// Context fields (MethodContext and BlockContext share the first three).
pub mod ctx {
    /// The sender (MethodContext) or caller (BlockContext).
    pub const SENDER: usize = 0;
    /// The instruction pointer: a 1-based byte index into the method, or nil when dead.
    pub const PC: usize = 1;
    /// The stack pointer: how many of the indexable fields are in use.
    pub const STACKP: usize = 2;
    /// MethodContext: the method.
    pub const METHOD: usize = 3;
    /// BlockContext: the number of arguments.
    pub const BLOCK_ARGS: usize = 3;
    /// MethodContext: the closure it runs, or nil.
    pub const CLOSURE: usize = 4;
    /// BlockContext: the start pc.
    pub const BLOCK_START: usize = 4;
    /// MethodContext: the receiver.
    pub const RECEIVER: usize = 5;
    /// BlockContext: the home context.
    pub const HOME: usize = 5;
    /// The first temporary or stack field.
    pub const TEMPS: usize = 6;
}

/// BlockClosure fields.
pub mod closure {
    /// The context the closure was made in.
    pub const OUTER: usize = 0;
    /// The start pc.
    pub const START: usize = 1;
    /// The number of arguments.
    pub const ARGS: usize = 2;
    /// The first copied value.
    pub const COPIED: usize = 3;
}

/// The objects the interpreter names: nil, the booleans, the classes it instantiates, the
/// selectors it sends itself, the special selectors of bytecodes 176-207.
#[derive(Clone, Debug)]
pub struct Specials {
    /// The special objects array.
    pub array: Value,
    /// nil.
    pub nil: Value,
    /// true.
    pub true_: Value,
    /// false.
    pub false_: Value,
    /// SmallInteger.
    pub small_integer: Value,
    /// String.
    pub string: Value,
    /// Array.
    pub array_class: Value,
    /// Float.
    pub float: Value,
    /// MethodContext (Spur: Context).
    pub method_context: Value,
    /// BlockContext; nil in a Spur image, which has none (no class is nil, so no object
    /// is found to be one).
    pub block_context: Value,
    /// BlockClosure, in closure images.
    pub block_closure: Option<Value>,
    /// Point.
    pub point: Value,
    /// LargePositiveInteger.
    pub large_positive: Value,
    /// LargeNegativeInteger, where the array names it.
    pub large_negative: Option<Value>,
    /// Message.
    pub message: Value,
    /// CompiledMethod.
    pub compiled_method: Value,
    /// Character.
    pub character: Value,
    /// The character table (V3); `None` in a Spur image, whose characters are immediates.
    pub character_table: Option<Value>,
    /// #doesNotUnderstand:.
    pub sel_dnu: Value,
    /// #cannotReturn:.
    pub sel_cannot_return: Value,
    /// #mustBeBoolean.
    pub sel_must_be_boolean: Value,
    /// #aboutToReturn:through:, where the image has unwind blocks.
    pub sel_about_to_return: Option<Value>,
    /// The association holding the ProcessorScheduler, where the image has one.
    pub scheduler: Option<Value>,
    /// Semaphore, where the image names it (the timer's semaphore must be one).
    pub semaphore: Option<Value>,
    /// The 32 special selectors with their argument counts.
    pub selectors: Vec<(Value, usize)>,
    /// The array the special selectors were read from.
    pub(crate) selector_array: Value,
    /// The fields of the special objects array: a store into an Array of another size is
    /// into neither array these were read from (see [`Specials::may_hold`]).
    pub(crate) array_len: usize,
    /// The fields of the special selectors array (64, or more in an image that keeps more).
    pub(crate) selector_array_len: usize,
    /// The image uses closures (6504, 6505, and every Spur image).
    pub closures: bool,
    /// The image is a Spur image (6521 or 68021, or either with the multiple-bytecode-sets
    /// bit: 7033, 68533): method headers and class formats are
    /// decoded the Spur way, characters are immediates.
    pub spur: bool,
    /// The image's header flags ask for Spur's finalization of weak objects (bit 6, 64: a
    /// weak object a collection cleared a slot of is queued as a mourner, for primitive 172).
    /// Ephemerons are queued whatever the flags say.
    pub weak_mourners: bool,
    /// The bytes of the image's words (4, or 8 for 64-bit Spur): the size of a method's
    /// header and literal words, which a context's pc counts past.
    pub word_bytes: usize,
    /// Floats an immediate (SmallFloat64) can hold are made immediates: a 64-bit Spur image
    /// whose memory names a class for them.
    pub immediate_floats: bool,
    /// Smallest SmallInteger of the image (-2^30 on 32-bit images, -2^60 on 64-bit ones).
    pub min_int: i64,
    /// Largest SmallInteger of the image.
    pub max_int: i64,
}

impl Specials {
    /// Makes every special named by word `from` name `to` instead: after a one-way become
    /// of `from` into `to`, which in a Squeak VM reaches the VM's own references too (its
    /// `specialObjectsOop` is a root the become updates). A memory that forwards the old
    /// word (a tenant) reads the same object through either; one that rewrites references
    /// (the flat heap) would otherwise leave the interpreter naming the old object, so that
    /// `Smalltalk specialObjectsArray` answered the array a `becomeForward:` replaced.
    pub(crate) fn forward(&mut self, from: cowheap_heap::Word, to: Value) {
        let one = |v: &mut Value| {
            if v.word() == from {
                *v = to;
            }
        };
        for v in [
            &mut self.array,
            &mut self.nil,
            &mut self.true_,
            &mut self.false_,
            &mut self.small_integer,
            &mut self.string,
            &mut self.array_class,
            &mut self.float,
            &mut self.method_context,
            &mut self.block_context,
            &mut self.point,
            &mut self.large_positive,
            &mut self.message,
            &mut self.compiled_method,
            &mut self.character,
            &mut self.sel_dnu,
            &mut self.sel_cannot_return,
            &mut self.sel_must_be_boolean,
            &mut self.selector_array,
        ] {
            one(v);
        }
        for v in [
            &mut self.block_closure,
            &mut self.large_negative,
            &mut self.character_table,
            &mut self.sel_about_to_return,
            &mut self.scheduler,
            &mut self.semaphore,
        ]
        .into_iter()
        .flatten()
        {
            one(v);
        }
        for (v, _) in &mut self.selectors {
            one(v);
        }
    }

    /// Reads the special objects of the image held in `mem` (its `specialObjects` root).
    ///
    /// # Errors
    /// [`VmError::NotAnImage`] when the root is missing or an object the interpreter needs is
    /// not there; [`VmError::UnsupportedImage`] for a version that is no V3 or Spur one.
    pub fn read<M: ObjectMemory>(mem: &M) -> Result<Specials> {
        let array = mem
            .root("specialObjects")
            .ok_or(VmError::NotAnImage("no specialObjects root"))?;
        Specials::read_array(mem, array)
    }

    /// True if a store into an object of `n` indexable fields may have been into the
    /// special objects array or the special selectors array, which [`Specials::read_array`]
    /// reads again: one of the size of either. Time: O(1).
    #[inline(always)]
    pub(crate) fn may_hold(&self, n: usize) -> bool {
        n == self.array_len || n == self.selector_array_len
    }

    /// The special objects read again from the array these were read from, after a store
    /// into it or a become ([`Specials::read_array`]), if the array still names what the
    /// interpreter needs; `None` leaves the interpreter with these. Not taken: an array
    /// whose nil, true or false is another object (a Squeak VM reads those once, when it
    /// starts, and the memory keeps its own nil for new objects' fields), one that would
    /// change the bytecodes the image runs (closures or not), and one that names nil or an
    /// immediate for a class or selector the interpreter needs. Time: O(special objects).
    pub(crate) fn read_again<M: ObjectMemory>(&self, mem: &M) -> Option<Specials> {
        let sp = Specials::read_array(mem, self.array).ok()?;
        let same = |a: Value, b: Value| a.word() == b.word();
        if !same(sp.nil, self.nil)
            || !same(sp.true_, self.true_)
            || !same(sp.false_, self.false_)
            || sp.closures != self.closures
            || (sp.closures && sp.block_closure.is_none())
        {
            return None;
        }
        let usable = |v: Value| v.is_object() && !same(v, self.nil);
        let needed = [
            sp.small_integer,
            sp.string,
            sp.array_class,
            sp.float,
            sp.method_context,
            sp.block_context,
            sp.point,
            sp.large_positive,
            sp.message,
            sp.compiled_method,
            sp.character,
            sp.sel_dnu,
            sp.sel_cannot_return,
            sp.sel_must_be_boolean,
        ];
        let usable_all = needed
            .into_iter()
            .chain(sp.character_table)
            .chain(sp.selectors.iter().map(|&(s, _)| s))
            .all(usable);
        usable_all.then_some(sp)
    }

    /// [`Specials::read`] from the special objects array `array`: after a store into it, or
    /// into its special selectors, which a Squeak VM sees at the next use of the entry.
    ///
    /// # Errors
    /// As [`Specials::read`].
    pub(crate) fn read_array<M: ObjectMemory>(mem: &M, array: Value) -> Result<Specials> {
        let size = mem
            .size(array)
            .map_err(|_| VmError::NotAnImage("the special objects array is not an object"))?
            .slots;
        let get = |i: usize| -> Option<Value> {
            if i < size {
                mem.slot(array, i).ok()
            } else {
                None
            }
        };
        let need = |i: usize, what: &'static str| get(i).ok_or(VmError::NotAnImage(what));
        let nil = need(special::NIL, "nil")?;
        let is_nil = |v: &Value| v.word() == nil.word();
        let opt = |i: usize| get(i).filter(|v| !is_nil(v) && v.is_object());
        let saved = mem.root("image.version").and_then(|v| v.as_int());
        let version = match saved {
            Some(v) => Some(object_memory_version(v).ok_or(VmError::UnsupportedImage {
                version: v,
                why: "not a V3 (6502, 6504, 6505) or Spur (6521, 68021, and 7033, 68533 \
                      with the multiple-bytecode-sets bit) image version",
            })?),
            None => None,
        };
        let wide = version == Some(SPUR_64_VERSION);
        let spur = version == Some(SPUR_32_VERSION) || wide;
        // 64-bit Spur: 61-bit SmallIntegers, 8-byte words, immediate floats where the memory
        // has a class for them.
        let (word_bytes, int_bits) = if wide { (8, 61) } else { (4, 31) };
        let immediate_floats = wide
            && Word::small_float_bits(0)
                .is_some_and(|w| mem.class_of(Value::shared(w)).is_ok_and(|c| c.is_object()));
        let block_closure = opt(special::CLASS_BLOCK_CLOSURE);
        let closures = match version {
            Some(v) => v == 6504 || v == 6505 || spur,
            None => block_closure.is_some(),
        };
        let sels = need(special::SPECIAL_SELECTORS, "special selectors")?;
        let mut selectors = Vec::with_capacity(32);
        for k in 0..32 {
            let s = mem
                .slot(sels, 2 * k)
                .map_err(|_| VmError::NotAnImage("special selectors"))?;
            let n = mem
                .slot(sels, 2 * k + 1)
                .ok()
                .and_then(|v| v.as_int())
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(VmError::NotAnImage("special selector argument counts"))?;
            selectors.push((s, n));
        }
        Ok(Specials {
            array,
            nil,
            true_: need(special::TRUE, "true")?,
            false_: need(special::FALSE, "false")?,
            small_integer: need(special::CLASS_SMALL_INTEGER, "SmallInteger")?,
            string: need(special::CLASS_STRING, "String")?,
            array_class: need(special::CLASS_ARRAY, "Array")?,
            float: need(special::CLASS_FLOAT, "Float")?,
            method_context: need(special::CLASS_METHOD_CONTEXT, "MethodContext")?,
            block_context: need(special::CLASS_BLOCK_CONTEXT, "BlockContext")?,
            block_closure: if closures { block_closure } else { None },
            point: need(special::CLASS_POINT, "Point")?,
            large_positive: need(special::CLASS_LARGE_POSITIVE, "LargePositiveInteger")?,
            large_negative: opt(special::CLASS_LARGE_NEGATIVE),
            message: need(special::CLASS_MESSAGE, "Message")?,
            compiled_method: need(special::CLASS_COMPILED_METHOD, "CompiledMethod")?,
            character: need(special::CLASS_CHARACTER, "Character")?,
            character_table: if spur {
                None
            } else {
                Some(need(special::CHARACTER_TABLE, "the character table")?)
            },
            sel_dnu: need(special::SELECTOR_DNU, "#doesNotUnderstand:")?,
            sel_cannot_return: need(special::SELECTOR_CANNOT_RETURN, "#cannotReturn:")?,
            sel_must_be_boolean: need(special::SELECTOR_MUST_BE_BOOLEAN, "#mustBeBoolean")?,
            sel_about_to_return: opt(special::SELECTOR_ABOUT_TO_RETURN),
            scheduler: opt(special::SCHEDULER_ASSOCIATION),
            semaphore: opt(special::CLASS_SEMAPHORE),
            selectors,
            selector_array: sels,
            array_len: size,
            selector_array_len: mem
                .size(sels)
                .map_err(|_| VmError::NotAnImage("special selectors"))?
                .slots,
            closures,
            spur,
            weak_mourners: spur
                && mem
                    .root("image.flags")
                    .and_then(|v| v.as_int())
                    .is_some_and(|f| f & 64 != 0),
            word_bytes,
            immediate_floats,
            min_int: -(1 << (int_bits - 1)),
            max_int: (1 << (int_bits - 1)) - 1,
        })
    }
}

/// The image version of 32-bit Spur images.
pub const SPUR_32_VERSION: i64 = 6521;
/// The image version of 64-bit Spur images.
pub const SPUR_64_VERSION: i64 = 68021;
/// The image versions the interpreter runs: V3 without and with closures, Spur 32- and
/// 64-bit, and the Spur ones with [`MULTIPLE_BYTECODE_SETS`] (see
/// [`object_memory_version`]). A base with no `image.version` root (one built rather than
/// imported) is read as V3.
pub const KNOWN_VERSIONS: [i64; 5] = [6502, 6504, 6505, SPUR_32_VERSION, SPUR_64_VERSION];
/// The bit of an image version saying its methods may use the alternate bytecode set: Squeak
/// 6 and later save 32-bit Spur as 7033 and 64-bit Spur as 68533, whose object memory is
/// that of 6521 and 68021.
pub const MULTIPLE_BYTECODE_SETS: i64 = 512;

/// The version of the object memory of an image saved as `version`: one of
/// [`KNOWN_VERSIONS`], the Spur ones also from a version with [`MULTIPLE_BYTECODE_SETS`]
/// (7033 is 6521, 68533 is 68021); `None` for any other version (V3 with the bit included,
/// which no VM saves).
pub fn object_memory_version(version: i64) -> Option<i64> {
    let base = version & !MULTIPLE_BYTECODE_SETS;
    let spur = base == SPUR_32_VERSION || base == SPUR_64_VERSION;
    (KNOWN_VERSIONS.contains(&version) || spur).then_some(base)
}

/// A compiled method's header (the SmallInteger in its first slot), as decoded from a V3 or
/// a Spur header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodHeader {
    /// Number of literals.
    pub literals: usize,
    /// Number of arguments.
    pub args: usize,
    /// Number of temporaries, arguments included.
    pub temps: usize,
    /// Needs the large frame.
    pub large: bool,
    /// The primitive index, 0 for none.
    pub primitive: u16,
}

/// Stack fields of a context for a small frame.
pub const SMALL_FRAME: usize = 16;
/// Stack fields of a context for a large frame.
pub const LARGE_FRAME: usize = 56;

impl MethodHeader {
    /// Decodes a header word's integer value.
    pub fn decode(h: i64) -> MethodHeader {
        MethodHeader {
            literals: ((h >> 9) & 0xFF) as usize,
            args: ((h >> 24) & 0xF) as usize,
            temps: ((h >> 18) & 0x3F) as usize,
            large: (h >> 17) & 1 == 1,
            primitive: ((h & 0x1FF) | ((h >> 19) & 0x200)) as u16,
        }
    }

    /// Decodes a Spur header's integer value. Spur keeps the primitive out of the header: a
    /// method with one starts with `callPrimitive` (bytecode 139, then the primitive's low
    /// and high byte), so `first` is the method's first three bytecodes, or fewer.
    ///
    /// Layout: literals in bits 0-14, has-primitive bit 16, large frame bit 17,
    /// temporaries in bits 18-23, arguments in bits 24-27; the sign bit selects the
    /// alternate (Sista) bytecode set.
    ///
    /// # Errors
    /// [`SpurHeaderError::AlternateBytecodes`] for a method of the Sista set;
    /// [`SpurHeaderError::NoCallPrimitive`] for a method whose header says it has a
    /// primitive but whose first bytecode is not `callPrimitive`.
    pub fn decode_spur(h: i64, first: &[u8]) -> std::result::Result<MethodHeader, SpurHeaderError> {
        if h < 0 {
            return Err(SpurHeaderError::AlternateBytecodes);
        }
        let primitive = if (h >> 16) & 1 == 1 {
            match first {
                [CALL_PRIMITIVE, lo, hi, ..] => u16::from(*lo) | (u16::from(*hi) << 8),
                _ => return Err(SpurHeaderError::NoCallPrimitive),
            }
        } else {
            0
        };
        Ok(MethodHeader {
            literals: (h & 0x7FFF) as usize,
            args: ((h >> 24) & 0xF) as usize,
            temps: ((h >> 18) & 0x3F) as usize,
            large: (h >> 17) & 1 == 1,
            primitive,
        })
    }

    /// The number of literals a header's integer value gives, V3 or Spur (`spur`): what
    /// `newMethod:header:` needs before the method has bytecodes.
    pub fn literals_of(h: i64, spur: bool) -> usize {
        if spur {
            (h & 0x7FFF) as usize
        } else {
            MethodHeader::decode(h).literals
        }
    }

    /// Encodes a header (the inverse of [`MethodHeader::decode`]).
    pub fn encode(self) -> i64 {
        let p = i64::from(self.primitive);
        (p & 0x1FF)
            | ((p & 0x200) << 19)
            | ((self.literals as i64 & 0xFF) << 9)
            | (i64::from(self.large) << 17)
            | ((self.temps as i64 & 0x3F) << 18)
            | ((self.args as i64 & 0xF) << 24)
    }

    /// Stack fields a context for this method has.
    pub fn frame(self) -> usize {
        if self.large { LARGE_FRAME } else { SMALL_FRAME }
    }

    /// The 1-based byte index (a context's pc) of the first bytecode: past the header and
    /// literal words, of `word_bytes` each (4, or 8 in a 64-bit image).
    #[inline(always)]
    pub fn initial_pc(self, word_bytes: usize) -> usize {
        (self.literals + 1) * word_bytes + 1
    }
}

/// Why a Spur method header cannot be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpurHeaderError {
    /// The sign bit is set: the method uses the alternate (Sista) bytecode set.
    AlternateBytecodes,
    /// The header says the method has a primitive, but it does not start with
    /// `callPrimitive`.
    NoCallPrimitive,
}

/// What a class's format word says of its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassFormat {
    /// The V3 instance specification (0 fixed, 2-4 indexable pointers, 6 words, 8-11 bytes,
    /// 12-15 compiled methods), and for the Spur formats V3 has no specification for,
    /// [`ClassFormat::SHORTS`], [`ClassFormat::DOUBLE_WORDS`] and
    /// [`ClassFormat::EPHEMERON`].
    pub spec: u8,
    /// Number of named instance variables.
    pub fixed: usize,
}

impl ClassFormat {
    /// The specification of a Spur class of 16-bit indexable instances (Spur's 12-15, as
    /// `DoubleByteArray`), past V3's four bits.
    pub const SHORTS: u8 = 16;
    /// The specification of a Spur class of 64-bit indexable instances (Spur's 9, as
    /// `DoubleWordArray`), past V3's four bits.
    pub const DOUBLE_WORDS: u8 = 17;
    /// The specification of a Spur ephemeron class (Spur's 5): fixed pointers, made as
    /// [`cowheap_heap::Format::Ephemeron`] objects, past V3's four bits.
    pub const EPHEMERON: u8 = 18;

    /// Decodes a class's format word's integer value.
    pub fn decode(f: i64) -> ClassFormat {
        let fixed = ((f >> 10) & 0xC0) + ((f >> 1) & 0x3F) - 1;
        ClassFormat {
            spec: ((f >> 7) & 0xF) as u8,
            fixed: usize::try_from(fixed).unwrap_or(0),
        }
    }

    /// Decodes a Spur class's format word's integer value: the instance specification in
    /// bits 16-20, the number of named instance variables in bits 0-15. The Spur
    /// specification is mapped onto the V3 one the interpreter uses: 0-4 are the same,
    /// an ephemeron (5) is [`ClassFormat::EPHEMERON`],
    /// 32-bit words (10-11) are 6, bytes (16-23) 8, compiled methods
    /// (24-31) 12; the 64- and 16-bit indexable formats (9, 12-15), which V3 has no
    /// specification for, are [`ClassFormat::DOUBLE_WORDS`] and [`ClassFormat::SHORTS`];
    /// immediates (7) and the unused 6 and 8 are 7, of which nothing is instantiated.
    pub fn decode_spur(f: i64) -> ClassFormat {
        let spec = match (f >> 16) & 0x1F {
            s @ 0..=4 => s as u8,
            5 => ClassFormat::EPHEMERON,
            9 => ClassFormat::DOUBLE_WORDS,
            10 | 11 => 6,
            12..=15 => ClassFormat::SHORTS,
            16..=23 => 8,
            24..=31 => 12,
            _ => 7,
        };
        ClassFormat {
            spec,
            fixed: (f & 0xFFFF) as usize,
        }
    }

    /// Encodes a format word (the inverse of [`ClassFormat::decode`]).
    pub fn encode(self) -> i64 {
        let size = self.fixed as i64 + 1;
        ((size & 0xC0) << 10) | ((size & 0x3F) << 1) | (i64::from(self.spec) << 7)
    }

    /// True if instances have indexable fields.
    pub fn indexable(self) -> bool {
        self.spec >= 2 && self.spec != 5 && self.spec != 7 && self.spec != Self::EPHEMERON
    }
}
