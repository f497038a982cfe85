//! `hash` as the target image defines it, run from the image's own methods.
//!
//! An equality collection (`Set`, `Dictionary`) places an element by the answer of its `hash`
//! method, and Squeak versions and classes define that method differently: `Object>>hash` is
//! `^self identityHash`, `Point>>hash` combines the hashes of `x` and `y`, `Float>>hash` mixes
//! two words of the double, `Integer>>hash` (the LargeIntegers') the first and last digits,
//! `Fraction>>hash` is `^numerator bitXor: denominator`, `LookupKey>>hash` (Associations) is
//! `^key hash`, `Character>>hash` a quick return of its value. [`Hasher`] never assumes one of
//! these: it looks the selector up the receiver's class chain in the image's method
//! dictionaries and runs what it finds, when the method is within a small, exactly modelled
//! subset of the V3 bytecode set, and says why when it is not ([`Unhashed`]):
//!
//! - primitives: 75 (the identity hash of an object), the quick returns 256-519 (`^self`,
//!   `^-1 0 1 2`, `^instVar`), 60 on a byte or word object (`basicAt:`, `digitAt:`: a byte, a
//!   32-bit word; a boxed `Float`'s word 1 is the high half of the double, as the VM
//!   answers), 62 on one (`basicSize`, `digitLength`) and, in a Spur image, 171 on an
//!   immediate character (`Character>>asInteger`: its code point); any other primitive is
//!   not modelled;
//! - straight-line code up to its first `^` (of the top of the stack, or of `self`): push a
//!   receiver variable, `self`, a literal constant or `-1 0 1 2`; integer arithmetic
//!   `+ - * // \\ bitAnd: bitOr: bitXor: bitShift:`, computed exactly (SmallInteger's
//!   primitives, and the LargeInteger code they fall back to for arithmetic and for bit logic
//!   on non-negative numbers; bit logic with a negative LargeInteger is refused, as the
//!   images' LargeInteger code does not answer it in two's complement); any other send of 0
//!   or 1 arguments is looked up in its receiver's class and run the same way, to a depth of
//!   [`MAX_DEPTH`] and at most [`MAX_STEPS`] steps. Jumps, temporaries, blocks, comparisons
//!   and the rest are not modelled, and the method's answer must be an integer;
//! - the `String>>hash` of Squeak 2.x and 3.x (a loop-free formula written with a loop), known
//!   by its literal frame `#asciiValue 127 106 21845 3 48`, is computed by [`old_string_hash`].
//!
//! The method headers are read as the base's `image.version` root says: V3 headers (images
//! 6502, 6504, 6505 and their 64-bit forms: the primitive in the low 9 bits and bit 29, the
//! literal count above it) or Spur's (6521 and 68021, and 7033 and 68533 with the Sista
//! set: the literal count in the low 15 bits, a primitive flagged at bit 16 and named by the
//! `callPrimitive` bytecode, 139, that then begins the method, whose own code follows it). A
//! Spur method flagged for the alternative (Sista) bytecode set is reported, as is every
//! method of a base of no known version. The bytecodes of the subset are the same in V3 and
//! Spur images that use the V3 set with closures.
//!
//! The answers are checked against the images' own `hash`, run by the interpreter, in
//! `segment/tests/image_hash.rs` (random SmallIntegers, LargeIntegers, Floats, Fractions,
//! Points, Rectangles, Associations, Characters, Colors, Strings, Symbols and plain objects,
//! nested, in `mini.image` and the Scratch image).

use crate::bind::{BaseNames, Objects};
use crate::error::Result;
use cowheap_heap::{Format, Value};
use cowheap_tenants::Tenant;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Deepest chain of nested sends followed (a `Point` of `Point`s of ... ).
pub const MAX_DEPTH: usize = 16;
/// Longest straight-line method run.
const MAX_OPS: usize = 64;
/// Most steps (bytecodes run and sends made) one hash may take, whatever the methods: the
/// depth bound alone would allow 64^16 steps to a hostile image's methods that each send 64
/// messages. The images' own hash methods take fewer than 100.
pub const MAX_STEPS: usize = 10_000;
/// Image versions whose compiled methods have V3 headers.
const V3_VERSIONS: [i64; 6] = [6502, 6504, 6505, 68000, 68002, 68003];

/// Why a hash is not computed here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unhashed {
    /// The base's compiled methods are neither V3 nor Spur methods (no image version, or one
    /// not known).
    MethodFormat,
    /// No method for the selector up the receiver's class chain.
    NoMethod {
        /// The receiver's class.
        class: String,
        /// The selector.
        selector: String,
    },
    /// The method found is a primitive that is not modelled.
    Primitive {
        /// The class the method was found in.
        class: String,
        /// The selector.
        selector: String,
        /// The primitive's index.
        primitive: i64,
    },
    /// The method's code is outside the modelled subset.
    Code {
        /// The class the method was found in.
        class: String,
        /// The selector.
        selector: String,
        /// The first thing not modelled.
        what: String,
    },
    /// A step of the method does not apply to the values it meets (arithmetic on an object,
    /// an index out of range, an answer that is not an integer, a result past 127 bits).
    Value {
        /// The selector whose method it was.
        selector: String,
        /// What went wrong.
        what: &'static str,
    },
    /// Sends nested deeper than [`MAX_DEPTH`] (a key that contains itself).
    TooDeep,
    /// More than [`MAX_STEPS`] steps.
    TooLong,
}

impl fmt::Display for Unhashed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unhashed::MethodFormat => {
                write!(f, "the base's methods are neither V3 nor Spur methods")
            }
            Unhashed::NoMethod { class, selector } => {
                write!(f, "no method for #{selector} in {class} or above")
            }
            Unhashed::Primitive {
                class,
                selector,
                primitive,
            } => write!(
                f,
                "{class}>>{selector} is primitive {primitive}, not recognised here"
            ),
            Unhashed::Code {
                class,
                selector,
                what,
            } => write!(f, "{class}>>{selector} is not recognised here ({what})"),
            Unhashed::Value { selector, what } => write!(f, "#{selector}: {what}"),
            Unhashed::TooDeep => write!(f, "sends nested deeper than {MAX_DEPTH}"),
            Unhashed::TooLong => write!(f, "more than {MAX_STEPS} steps"),
        }
    }
}

/// A value on the modelled stack: an object or immediate as the tenant has it, or an integer
/// computed by the method (of any size up to 127 bits, as LargeIntegers may be).
#[derive(Clone, Copy, Debug)]
enum V {
    Val(Value),
    Int(i128),
}

impl V {
    fn int(self) -> Option<i128> {
        match self {
            V::Int(i) => Some(i),
            V::Val(v) => v.as_int().map(i128::from),
        }
    }
}

/// Integer operations the special and literal selectors name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Quo,
    Mod,
    And,
    Or,
    Xor,
    Shift,
}

impl Arith {
    fn of_selector(s: &[u8]) -> Option<Arith> {
        Some(match s {
            b"+" => Arith::Add,
            b"-" => Arith::Sub,
            b"*" => Arith::Mul,
            b"//" => Arith::Quo,
            b"\\\\" => Arith::Mod,
            b"bitAnd:" => Arith::And,
            b"bitOr:" => Arith::Or,
            b"bitXor:" => Arith::Xor,
            b"bitShift:" => Arith::Shift,
            _ => return None,
        })
    }

    /// The exact result, `None` past 127 bits, for a zero divisor, or where the image's
    /// answer is not trusted to be exact: bit logic (`bitAnd: bitOr: bitXor: bitShift:`)
    /// with an operand or a result outside the SmallIntegers (`small` is the first
    /// positive integer that is not one) and an operand below zero. SmallInteger's
    /// primitives answer exactly; past them the images' LargeInteger code does, for
    /// arithmetic and for bit logic on non-negative numbers, but its bit logic on negative
    /// LargeIntegers is not two's complement (the property tests found `bitXor:` answers
    /// that differ).
    fn apply(self, a: i128, b: i128, small: i128) -> Result<i128, &'static str> {
        let fits = |x: i128| (-small..small).contains(&x);
        let r = self
            .exact(a, b)
            .ok_or("a result past 127 bits or a division by zero")?;
        let bit_logic = matches!(self, Arith::And | Arith::Or | Arith::Xor | Arith::Shift);
        if bit_logic && !(fits(a) && fits(b) && fits(r)) && (a < 0 || b < 0 && self != Arith::Shift)
        {
            return Err("bit logic on a negative LargeInteger (not modelled)");
        }
        Ok(r)
    }

    fn exact(self, a: i128, b: i128) -> Option<i128> {
        match self {
            Arith::Add => a.checked_add(b),
            Arith::Sub => a.checked_sub(b),
            Arith::Mul => a.checked_mul(b),
            // Checked: `i128::MIN // -1` overflows (and its remainder with it).
            Arith::Quo => {
                let (q, r) = (a.checked_div_euclid(b)?, a.checked_rem_euclid(b)?);
                q.checked_sub(i128::from(b < 0 && r != 0))
            }
            Arith::Mod => {
                let r = a.checked_rem_euclid(b)?;
                if b < 0 && r != 0 {
                    r.checked_add(b)
                } else {
                    Some(r)
                }
            }
            Arith::And => Some(a & b),
            Arith::Or => Some(a | b),
            Arith::Xor => Some(a ^ b),
            Arith::Shift => {
                if b >= 0 {
                    let s = u32::try_from(b).ok().filter(|&s| s < 126)?;
                    let r = a.checked_shl(s)?;
                    (r >> s == a).then_some(r)
                } else {
                    let s = u32::try_from(b.unsigned_abs()).unwrap_or(127).min(127);
                    Some(a >> s)
                }
            }
        }
    }
}

/// One step of a modelled method.
#[derive(Clone, Debug)]
enum Op {
    PushSlot(usize),
    PushSelf,
    Push(V),
    Arith(Arith),
    /// A send of the literal selector (a Symbol) with 0 or 1 arguments.
    Send(Value, usize),
    /// `^` the top of the stack.
    Return,
    /// `^self`.
    ReturnSelf,
}

/// What a method does, decoded once.
#[derive(Clone, Debug)]
enum Program {
    /// Primitive 75.
    IdentityHash,
    /// Primitive 256: `^self`.
    ReturnSelf,
    /// Primitives 260-263.
    ReturnInt(i128),
    /// Primitives 264-519: `^instVar`.
    ReturnSlot(usize),
    /// Primitive 60 on a byte or word object.
    At,
    /// Primitive 62 on a byte or word object.
    Size,
    /// Primitive 171 of a Spur image on an immediate character: its code point.
    CharCode,
    /// The old `String>>hash`.
    OldString,
    /// Straight-line code.
    Code(Vec<Op>),
    /// Not modelled.
    Not(Unhashed),
}

/// Computes `hash` (and the sends it makes) as the target image defines it; see the module
/// doc. Caches method lookups and decoded methods, so one `Hasher` serves a whole rehash.
pub struct Hasher<'a> {
    /// The base the tenant reads: its version, whose special objects array (the Float
    /// class) and classes' names a commit may have changed.
    heap: &'a dyn Objects,
    names: &'a BaseNames,
    v3: bool,
    /// Whether the base's methods have Spur headers (6521, 68021 and their Sista variants).
    spur: bool,
    /// The first positive integer that is not a SmallInteger of the base's images.
    small: i128,
    float_class: Option<Value>,
    lookups: HashMap<(u64, u64), Option<(Value, Value)>>,
    /// What each method dictionary holds for each selector looked up in it: classes that
    /// share a dictionary have it searched once.
    dictionaries: HashMap<(u64, u64), Option<Value>>,
    /// Method dictionary keys read by the lookups.
    keys_read: u64,
    /// Classes the lookups walked (each asked for its method dictionary, or found a cycle
    /// or the chain's end).
    classes_walked: u64,
    programs: HashMap<u64, Rc<Program>>,
    /// Steps left to the hash being computed.
    fuel: usize,
}

impl fmt::Debug for Hasher<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("v3", &self.v3)
            .field("lookups", &self.lookups.len())
            .field("programs", &self.programs.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Hasher<'a> {
    /// A hasher for tenants of `heap`, whose names are `names`: a base heap, or the
    /// tenants' version of a base ([`cowheap_forwarders::Base`]), whose special objects
    /// array names the Float class the tenants' code takes for boxed Floats (a commit may
    /// have changed it). Time: O(1).
    pub fn new<O: Objects>(heap: &'a O, names: &'a BaseNames) -> Hasher<'a> {
        let version = heap.named_root("image.version").and_then(Value::as_int);
        let v3 = version.is_some_and(|v| V3_VERSIONS.contains(&v));
        let spur = version.is_some_and(|v| matches!(v, 6521 | 7033 | 68021 | 68533));
        // 31-bit SmallIntegers in 32-bit images, 61-bit in 64-bit ones (68000 on).
        let small = if version.is_some_and(|v| v >= 68_000) {
            1 << 60
        } else {
            1 << 30
        };
        let float_class = crate::bind::boxed_float_class(heap);
        Hasher {
            heap,
            names,
            v3,
            spur,
            small,
            float_class,
            lookups: HashMap::new(),
            dictionaries: HashMap::new(),
            keys_read: 0,
            classes_walked: 0,
            programs: HashMap::new(),
            fuel: MAX_STEPS,
        }
    }

    /// The method dictionary keys this hasher's lookups have read: the work they did. Each
    /// dictionary is searched at most once for each selector, however many classes share it
    /// and however their superclass chains run.
    pub fn keys_read(&self) -> u64 {
        self.keys_read
    }

    /// The classes this hasher's lookups have walked: at most one a class for each
    /// selector looked up, and one more a lookup, however long the superclass chains and in
    /// whatever order the classes are met.
    pub fn classes_walked(&self) -> u64 {
        self.classes_walked
    }

    /// `v hash` in tenant `t`, as the image computes it, or why it is not computed here.
    /// Time: O(the methods run), at most [`MAX_DEPTH`] sends deep.
    ///
    /// # Errors
    /// [`crate::SegmentError::Tenant`] for a reference the tenant does not have.
    pub fn hash(&mut self, t: &Tenant, v: Value) -> Result<Result<i64, Unhashed>> {
        self.answer(t, v, "hash")
    }

    /// `v identityHash` in tenant `t`, as the image computes it: what an `IdentitySet` or
    /// `IdentityDictionary` of the images probes by. The V3 images answer the identity hash
    /// (primitive 75); a Spur kernel may scale it (`basicIdentityHash bitShift: 18` in the
    /// headless image). Time and errors as [`Hasher::hash`].
    ///
    /// # Errors
    /// [`crate::SegmentError::Tenant`] for a reference the tenant does not have.
    pub fn identity_hash(&mut self, t: &Tenant, v: Value) -> Result<Result<i64, Unhashed>> {
        self.answer(t, v, "identityHash")
    }

    /// The integer `v` answers to the unary `selector`, as modelled.
    fn answer(&mut self, t: &Tenant, v: Value, selector: &str) -> Result<Result<i64, Unhashed>> {
        let Some(sel) = self.names.symbol(selector) else {
            return Ok(Err(Unhashed::NoMethod {
                class: self.class_name(t, v)?,
                selector: selector.into(),
            }));
        };
        self.fuel = MAX_STEPS;
        Ok(match self.send(t, V::Val(v), sel, None, 0)? {
            Ok(r) => match r.int().and_then(|i| i64::try_from(i).ok()) {
                Some(i) => Ok(i),
                None => Err(Unhashed::Value {
                    selector: selector.into(),
                    what: "an answer that is not an integer",
                }),
            },
            Err(e) => Err(e),
        })
    }

    /// The primitive index of compiled method `m` (0 for none) as the base's method headers
    /// say: a V3 header's low 9 bits and bit 29; in a Spur header, the has-primitive bit 16
    /// and the index in the `callPrimitive` bytecode (139) that starts the bytecodes. `None`
    /// if `m` is not a compiled method or the base's header format is not known.
    pub(crate) fn primitive(&self, t: &Tenant, m: Value) -> Result<Option<i64>> {
        if !m.word().is_ref() || t.format(m)? != Format::CompiledMethod {
            return Ok(None);
        }
        let Some(h) = t.slot(m, 0)?.as_int() else {
            return Ok(None);
        };
        if self.v3 {
            return Ok(Some((h & 0x1FF) + ((h >> 19) & 0x200)));
        }
        // A Spur method of the alternative (Sista) bytecode set: its bytecodes are not read.
        if !self.spur || h < 0 {
            return Ok(None);
        }
        if h & (1 << 16) == 0 {
            return Ok(Some(0));
        }
        Ok(match t.bytes(m)? {
            [139, lo, hi, ..] => Some(i64::from(*lo) | (i64::from(*hi) << 8)),
            _ => None,
        })
    }

    /// Whether `v`'s `hash` is the old `String>>hash` of a byte object (then two such keys
    /// are equal when their bytes are).
    pub(crate) fn is_old_string(&mut self, t: &Tenant, v: Value) -> Result<bool> {
        if !self.v3 || !v.word().is_ref() || t.format(v)? != Format::Bytes {
            return Ok(false);
        }
        let Some(sel) = self.names.symbol("hash") else {
            return Ok(false);
        };
        let class = t.class_of(v)?;
        Ok(match self.lookup(t, class, sel)? {
            Some((m, _)) => matches!(*self.program(t, m, "hash")?, Program::OldString),
            None => false,
        })
    }

    /// The method for `selector` in `class` or its superclasses, and the class holding it
    /// (slot 0 of a class is its superclass, slot 1 its method dictionary, whose keys are its
    /// last indexable slots and whose values are in its `array`, slot 1). A chain that comes
    /// back to a class it passed holds no such method. Time: O(the classes of the chain not
    /// walked before for this selector), each answered for later lookups (the chain is
    /// followed to its end, as the virtual machine follows it, with no bound that would
    /// leave the classes passed unanswered), and each method dictionary searched at most
    /// once per selector whatever the classes that share it, so that a rehash's lookups
    /// cost O(the classes and dictionaries) however long or tangled the chains are.
    pub(crate) fn lookup(
        &mut self,
        t: &Tenant,
        class: Value,
        selector: Value,
    ) -> Result<Option<(Value, Value)>> {
        let sel = selector.word().bits();
        if let Some(&found) = self.lookups.get(&(class.word().bits(), sel)) {
            return Ok(found);
        }
        let nil = self.heap.nil_value();
        let is_pointers = |v: Value| -> Result<bool> {
            Ok(v.word().is_ref() && !v.same_word(nil) && t.format(v)? == Format::Pointers)
        };
        let mut found = None;
        // The classes passed, none holding the method: each has the chain's answer too.
        // The chain is followed to its end however long (as the virtual machine's lookup
        // is), so every class passed is answered and no class is walked twice for one
        // selector, whatever the order of the lookups.
        let mut passed: Vec<u64> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut c = class;
        loop {
            if let Some(&known) = self.lookups.get(&(c.word().bits(), sel)) {
                found = known;
                break;
            }
            self.classes_walked += 1;
            if !seen.insert(c.word().bits()) || !is_pointers(c)? || t.size(c)?.slots < 2 {
                break;
            }
            let md = t.slot(c, 1)?;
            let own = match self.dictionaries.get(&(md.word().bits(), sel)) {
                Some(&own) => own,
                None => {
                    let own = own_method(t, md, selector, &is_pointers, &mut self.keys_read)?;
                    self.dictionaries.insert((md.word().bits(), sel), own);
                    own
                }
            };
            if let Some(m) = own {
                found = Some((m, c));
                break;
            }
            passed.push(c.word().bits());
            c = t.slot(c, 0)?;
        }
        for p in passed.into_iter().chain([class.word().bits()]) {
            self.lookups.insert((p, sel), found);
        }
        Ok(found)
    }

    fn class_name(&self, t: &Tenant, v: Value) -> Result<String> {
        let class = t.class_of(v)?;
        Ok(self.name_of(class))
    }

    fn name_of(&self, class: Value) -> String {
        class
            .word()
            .as_base()
            .and_then(|x| self.heap.name_of_class(x))
            .unwrap_or_else(|| "a class of the tenant".into())
    }

    /// Sends `selector` to `receiver` (with `arg` if one), as modelled.
    fn send(
        &mut self,
        t: &Tenant,
        receiver: V,
        selector: Value,
        arg: Option<V>,
        depth: usize,
    ) -> Result<Result<V, Unhashed>> {
        if depth > MAX_DEPTH {
            return Ok(Err(Unhashed::TooDeep));
        }
        let Some(fuel) = self.fuel.checked_sub(1) else {
            return Ok(Err(Unhashed::TooLong));
        };
        self.fuel = fuel;
        if !self.v3 && !self.spur {
            return Ok(Err(Unhashed::MethodFormat));
        }
        let sel_bytes = t.bytes(selector)?.to_vec();
        let sel_name = String::from_utf8_lossy(&sel_bytes).into_owned();
        // Integer arithmetic: exact, whatever the size.
        if let (Some(a), Some(op)) = (receiver.int(), Arith::of_selector(&sel_bytes)) {
            let Some(b) = arg.and_then(V::int) else {
                return Ok(Err(Unhashed::Value {
                    selector: sel_name,
                    what: "integer arithmetic with an argument that is not an integer",
                }));
            };
            return Ok(op
                .apply(a, b, self.small)
                .map(V::Int)
                .map_err(|what| Unhashed::Value {
                    selector: sel_name,
                    what,
                }));
        }
        let rv = match receiver {
            V::Val(v) => v,
            V::Int(i) => match i64::try_from(i)
                .ok()
                .filter(|&i| (-self.small..self.small).contains(&i.into()))
            {
                Some(i) => Value::int(i),
                None => {
                    return Ok(Err(Unhashed::Value {
                        selector: sel_name,
                        what: "a send to a computed LargeInteger",
                    }));
                }
            },
        };
        let class = t.class_of(rv)?;
        let Some((method, holder)) = self.lookup(t, class, selector)? else {
            return Ok(Err(Unhashed::NoMethod {
                class: self.name_of(class),
                selector: sel_name,
            }));
        };
        let program = self.program(t, method, &sel_name)?;
        let args_wanted = sel_name.bytes().filter(|&b| b == b':').count()
            + usize::from(
                sel_name
                    .bytes()
                    .next()
                    .is_some_and(|b| !b.is_ascii_alphabetic()),
            );
        if args_wanted != usize::from(arg.is_some()) {
            return Ok(Err(Unhashed::Value {
                selector: sel_name,
                what: "a send with the wrong number of arguments",
            }));
        }
        let bad = |what| Unhashed::Value {
            selector: sel_name.clone(),
            what,
        };
        let raw = |t: &Tenant| -> Result<Option<(Format, usize)>> {
            if !rv.word().is_ref() {
                return Ok(None);
            }
            Ok(match t.format(rv)? {
                f @ (Format::Bytes | Format::Words) => Some((f, t.bytes(rv)?.len())),
                _ => None,
            })
        };
        Ok(match &*program {
            Program::Not(why) => Err(match why {
                Unhashed::Primitive {
                    primitive,
                    selector,
                    ..
                } => Unhashed::Primitive {
                    class: self.name_of(holder),
                    selector: selector.clone(),
                    primitive: *primitive,
                },
                Unhashed::Code { selector, what, .. } => Unhashed::Code {
                    class: self.name_of(holder),
                    selector: selector.clone(),
                    what: what.clone(),
                },
                other => other.clone(),
            }),
            Program::IdentityHash => {
                if rv.word().is_ref() {
                    Ok(V::Int(i128::from(t.identity_hash(rv)?)))
                } else {
                    Err(bad("the identity hash of an immediate"))
                }
            }
            Program::ReturnSelf => Ok(receiver),
            Program::ReturnInt(i) => Ok(V::Int(*i)),
            Program::ReturnSlot(k) => {
                if rv.word().is_ref() && t.format(rv)? == Format::Pointers && *k < t.size(rv)?.slots
                {
                    Ok(V::Val(t.slot(rv, *k)?))
                } else {
                    Err(bad("a quick return of a field the receiver does not have"))
                }
            }
            Program::At => match (raw(t)?, arg.and_then(V::int)) {
                (Some((f, len)), Some(i)) => {
                    let unit = if f == Format::Bytes { 1 } else { 4 };
                    match usize::try_from(i)
                        .ok()
                        .filter(|&i| i >= 1 && i.checked_mul(unit).is_some_and(|end| end <= len))
                    {
                        Some(i) => Ok(V::Int(self.unit_at(t, rv, f, i)?)),
                        None => Err(bad("an index out of range")),
                    }
                }
                _ => Err(bad("indexing something other than a byte or word object")),
            },
            Program::Size => match raw(t)? {
                Some((f, len)) => Ok(V::Int(
                    if f == Format::Bytes { len } else { len / 4 } as i128
                )),
                None => Err(bad(
                    "the size of something other than a byte or word object",
                )),
            },
            Program::CharCode => match rv.word().as_char_code() {
                Some(c) => Ok(V::Int(i128::from(c))),
                None => Err(bad(
                    "the code of something other than an immediate character",
                )),
            },
            Program::OldString => {
                if rv.word().is_ref() && t.format(rv)? == Format::Bytes {
                    Ok(V::Int(i128::from(old_string_hash(t.bytes(rv)?))))
                } else {
                    Err(bad("the old String>>hash of something other than bytes"))
                }
            }
            Program::Code(ops) => self.run(t, receiver, ops, &sel_name, depth)?,
        })
    }

    /// Unit `i` (1-based) of a byte or word object, as `basicAt:` answers it.
    fn unit_at(&self, t: &Tenant, v: Value, f: Format, i: usize) -> Result<i128> {
        let bytes = t.bytes(v)?;
        if f == Format::Bytes {
            return Ok(i128::from(bytes[i - 1]));
        }
        let is_float = bytes.len() == 8
            && self
                .float_class
                .is_some_and(|c| t.class_of(v).is_ok_and(|k| k.same_word(c)));
        // A boxed Float is kept as a little-endian double; Squeak's word 1 is its high half.
        let at = if is_float { 8 - 4 * i } else { 4 * (i - 1) };
        let w = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        Ok(i128::from(w))
    }

    fn run(
        &mut self,
        t: &Tenant,
        receiver: V,
        ops: &[Op],
        selector: &str,
        depth: usize,
    ) -> Result<Result<V, Unhashed>> {
        let bad = |what| Unhashed::Value {
            selector: selector.to_owned(),
            what,
        };
        let mut stack: Vec<V> = Vec::new();
        for op in ops {
            let Some(fuel) = self.fuel.checked_sub(1) else {
                return Ok(Err(Unhashed::TooLong));
            };
            self.fuel = fuel;
            match op {
                Op::PushSelf => stack.push(receiver),
                Op::Push(v) => stack.push(*v),
                Op::PushSlot(k) => {
                    let V::Val(rv) = receiver else {
                        return Ok(Err(bad("a field of an integer")));
                    };
                    if !rv.word().is_ref()
                        || t.format(rv)? != Format::Pointers
                        || *k >= t.size(rv)?.slots
                    {
                        return Ok(Err(bad("a field the receiver does not have")));
                    }
                    stack.push(V::Val(t.slot(rv, *k)?));
                }
                Op::Arith(a) => {
                    let (Some(y), Some(x)) = (stack.pop(), stack.pop()) else {
                        return Ok(Err(bad("an empty stack")));
                    };
                    match (x.int(), y.int()) {
                        (Some(x), Some(y)) => match a.apply(x, y, self.small) {
                            Ok(r) => stack.push(V::Int(r)),
                            Err(what) => return Ok(Err(bad(what))),
                        },
                        _ => return Ok(Err(bad("arithmetic on something that is not an integer"))),
                    }
                }
                Op::Send(sel, nargs) => {
                    let arg = if *nargs == 1 { stack.pop() } else { None };
                    let Some(r) = stack.pop() else {
                        return Ok(Err(bad("an empty stack")));
                    };
                    match self.send(t, r, *sel, arg, depth + 1)? {
                        Ok(v) => stack.push(v),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                Op::Return => {
                    return Ok(stack.pop().ok_or(bad("an empty stack")));
                }
                Op::ReturnSelf => return Ok(Ok(receiver)),
            }
        }
        Ok(Err(bad("no return")))
    }

    /// Decodes `method` once.
    fn program(&mut self, t: &Tenant, method: Value, selector: &str) -> Result<Rc<Program>> {
        if let Some(p) = self.programs.get(&method.word().bits()) {
            return Ok(p.clone());
        }
        let p = Rc::new(decode(t, method, selector, self.spur)?);
        self.programs.insert(method.word().bits(), p.clone());
        Ok(p)
    }
}

/// The method for `selector` in method dictionary `md`, counting the keys read in `keys_read`.
fn own_method(
    t: &Tenant,
    md: Value,
    selector: Value,
    is_pointers: &impl Fn(Value) -> Result<bool>,
    keys_read: &mut u64,
) -> Result<Option<Value>> {
    if !is_pointers(md)? || t.size(md)?.slots < 2 {
        return Ok(None);
    }
    let values = t.slot(md, 1)?;
    if !is_pointers(values)? {
        return Ok(None);
    }
    let n = t.size(values)?.slots;
    let Some(named) = t.size(md)?.slots.checked_sub(n) else {
        return Ok(None);
    };
    for i in 0..n {
        *keys_read += 1;
        let k = t.slot(md, named + i)?;
        if k.word().is_ref() && t.identical(k, selector)? {
            return Ok(Some(t.slot(values, i)?));
        }
    }
    Ok(None)
}

/// What a compiled method does, if it is in the modelled subset (see the module doc); its
/// header is Spur's if `spur`, else V3's.
fn decode(t: &Tenant, method: Value, selector: &str, spur: bool) -> Result<Program> {
    let code = |what: String| {
        Program::Not(Unhashed::Code {
            class: String::new(),
            selector: selector.to_owned(),
            what,
        })
    };
    if !method.word().is_ref() || t.format(method)? != Format::CompiledMethod {
        return Ok(code("not a CompiledMethod".into()));
    }
    let Some(header) = t.slot(method, 0)?.as_int() else {
        return Ok(code("a header that is not a SmallInteger".into()));
    };
    let bytes = t.bytes(method)?;
    // Where the method's own code begins: after the `callPrimitive` of a Spur method.
    let (primitive, literals, start) = if spur {
        // A Spur method header: the literal count in the low 15 bits, bit 16 set if the
        // method has a primitive, the sign set for the alternative bytecode set.
        if header < 0 {
            return Ok(code("the alternative (Sista) bytecode set".into()));
        }
        let literals = usize::try_from(header & 0x7FFF).unwrap_or(0);
        if header & (1 << 16) == 0 {
            (0, literals, 0)
        } else {
            match bytes {
                [139, lo, hi, ..] => (i64::from(*lo) | i64::from(*hi) << 8, literals, 3),
                _ => {
                    return Ok(code(
                        "a primitive method that does not begin with callPrimitive".into(),
                    ));
                }
            }
        }
    } else {
        // A V3 method header: the primitive's low 9 bits, the literal count above them,
        // the primitive's tenth bit at bit 29 of the header.
        let primitive = (header & 0x1FF) + ((header >> 19) & 0x200);
        (
            primitive,
            usize::try_from((header >> 9) & 0xFF).unwrap_or(0),
            0,
        )
    };
    let slots = t.size(method)?.slots;
    match primitive {
        0 => {}
        75 => return Ok(Program::IdentityHash),
        60 => return Ok(Program::At),
        62 => return Ok(Program::Size),
        171 if spur => return Ok(Program::CharCode),
        256 => return Ok(Program::ReturnSelf),
        260..=263 => return Ok(Program::ReturnInt(i128::from(primitive - 261))),
        264..=519 => return Ok(Program::ReturnSlot((primitive - 264) as usize)),
        p => {
            return Ok(Program::Not(Unhashed::Primitive {
                class: String::new(),
                selector: selector.to_owned(),
                primitive: p,
            }));
        }
    }
    if literals + 1 > slots {
        return Ok(code("more literals than fields".into()));
    }
    let literal = |i: usize| -> Result<Option<Value>> {
        Ok(if i < literals {
            Some(t.slot(method, 1 + i)?)
        } else {
            None
        })
    };
    if !spur && is_old_string_hash(t, method, literals)? {
        return Ok(Program::OldString);
    }
    let mut ops = Vec::new();
    for &b in bytes.iter().skip(start).take(MAX_OPS) {
        let op = match b {
            0..=15 => Op::PushSlot(usize::from(b)),
            32..=63 => match literal(usize::from(b - 32))? {
                Some(v) => Op::Push(V::Val(v)),
                None => return Ok(code(format!("bytecode {b}: a literal past the frame"))),
            },
            112 => Op::PushSelf,
            116..=119 => Op::Push(V::Int(i128::from(b) - 117)),
            120 => Op::ReturnSelf,
            124 => Op::Return,
            176 => Op::Arith(Arith::Add),
            177 => Op::Arith(Arith::Sub),
            184 => Op::Arith(Arith::Mul),
            186 => Op::Arith(Arith::Mod),
            188 => Op::Arith(Arith::Shift),
            189 => Op::Arith(Arith::Quo),
            190 => Op::Arith(Arith::And),
            191 => Op::Arith(Arith::Or),
            208..=239 => {
                let nargs = usize::from((b - 208) / 16);
                match literal(usize::from(b & 15))? {
                    Some(s) if s.word().is_ref() && t.format(s)? == Format::Bytes => {
                        Op::Send(s, nargs)
                    }
                    _ => return Ok(code(format!("bytecode {b}: a selector that is no Symbol"))),
                }
            }
            _ => return Ok(code(format!("bytecode {b}"))),
        };
        let end = matches!(op, Op::Return | Op::ReturnSelf);
        ops.push(op);
        if end {
            return Ok(Program::Code(ops));
        }
    }
    Ok(code(format!("no return in its first {MAX_OPS} bytecodes")))
}

/// Whether `method` is the Squeak 2.x/3.x `String>>hash`, known by its literal frame.
fn is_old_string_hash(t: &Tenant, method: Value, literals: usize) -> Result<bool> {
    if literals < 6 || t.size(method)?.slots < 1 + 6 {
        return Ok(false);
    }
    let selector = t.slot(method, 1)?;
    let selector_ok = selector.word().is_ref()
        && t.format(selector)? == Format::Bytes
        && t.bytes(selector)? == b"asciiValue";
    let mut ints = [0i64; 5];
    for (i, v) in ints.iter_mut().enumerate() {
        match t.slot(method, 2 + i)?.as_int() {
            Some(x) => *v = x,
            None => return Ok(false),
        }
    }
    Ok(selector_ok && ints == [127, 106, 21_845, 3, 48])
}

/// `String>>hash` as Squeak 2.x and 3.x define it (up to Squeak 3.6; `mini.image` and the
/// Scratch image have it): the empty string hashes to 21845; one character `c` to
/// `(c bitAnd: 127) * 106`; a longer string of length `l` to `first * 48 + next + l`,
/// where `next` is the second character if `l` is 2, else the next-to-last one.
/// Checked against the images' own method, run by the interpreter: `'abc' hash` is 4757,
/// `'a' hash` 10282, `'hello world' hash` 5111 in both.
pub fn old_string_hash(bytes: &[u8]) -> i64 {
    let l = bytes.len();
    match bytes {
        [] => 21_845,
        [c] => i64::from(c & 127) * 106,
        [first, second] => i64::from(*first) * 48 + i64::from(*second) + 2,
        [first, .., next, _] => i64::from(*first) * 48 + i64::from(*next) + l as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::Arith;

    #[test]
    fn arithmetic_is_smalltalks() {
        let small = 1 << 30;
        let ap = |op: Arith, a, b| op.apply(a, b, small).ok();
        // Floored division and modulo, as `//` and `\\`.
        assert_eq!(ap(Arith::Quo, -7, 2), Some(-4));
        assert_eq!(ap(Arith::Quo, 7, -2), Some(-4));
        assert_eq!(ap(Arith::Quo, -7, -2), Some(3));
        assert_eq!(ap(Arith::Mod, -7, 2), Some(1));
        assert_eq!(ap(Arith::Mod, 7, -2), Some(-1));
        assert_eq!(ap(Arith::Mod, -7, -2), Some(-1));
        assert_eq!(ap(Arith::Mod, 1, 0), None);
        assert_eq!(ap(Arith::Quo, 1, 0), None);
        // The one quotient past 127 bits, and its remainder, are refused, not a panic.
        assert_eq!(ap(Arith::Quo, i128::MIN, -1), None);
        assert_eq!(ap(Arith::Mod, i128::MIN, -1), None);
        assert_eq!(ap(Arith::Quo, i128::MIN, 1), Some(i128::MIN));
        // bitShift: both ways, arithmetic to the right, refused past 127 bits.
        assert_eq!(ap(Arith::Shift, 3, 2), Some(12));
        assert_eq!(ap(Arith::Shift, -13, -2), Some(-4));
        assert_eq!(ap(Arith::Shift, 1, 200), None);
        assert_eq!(ap(Arith::Shift, 1 << 100, 30), None);
        assert_eq!(ap(Arith::Shift, -1, -500), Some(-1));
        assert_eq!(ap(Arith::Xor, -4, 5), Some(-7));
        // Bit logic past the SmallIntegers: only on non-negative numbers.
        assert_eq!(ap(Arith::Shift, small, 2), Some(small * 4));
        assert_eq!(ap(Arith::Shift, -small, 2), None);
        assert_eq!(ap(Arith::Xor, -small - 1, 5), None);
        assert_eq!(ap(Arith::Xor, small, 5), Some(small ^ 5));
        assert_eq!(ap(Arith::Add, -small * 8, -1), Some(-small * 8 - 1));
    }
}
