//! Binding a Squeak segment's out-pointers to a base, and materialising its objects in a
//! tenant.
//!
//! [`BaseNames`] indexes a base once (O(base objects)): its globals (the `Smalltalk`
//! dictionary's associations), its Symbols by string, its compact classes and nil, true
//! and false. [`bind`] then resolves each out-pointer of a [`Project`]:
//!
//! | out-pointer | bound to | refused when |
//! | --- | --- | --- |
//! | nil, true, false, an integer | the base's own | never |
//! | a Symbol | the base's Symbol of those bytes ([`byte_text`]) | the base has none |
//! | a class | the global of that name, if it is a class of that name | missing; another shape: the writer's instance variable names (the stream's class structures) differ from the base class's (its own and inherited `instanceVariables`) |
//! | a global | the global's value | missing |
//! | `global at: #key` | the value under `key` in a Dictionary-shaped global | missing |
//! | a Character carried by value (`value` a SmallInteger) | the base's Character of that value, as `Character>>comeFullyUpOnReload:` answers it (`Character value: value`): the CharacterTable's in a V3 image, the immediate in Spur | a V3 base without one for that value (a value past 255) |
//! | other constructed objects, objects carried by value in the stream | (nothing) | always: they need the writer's code run |
//!
//! The writer's compact classes (the last out-pointer of an Etoys export: an Array of class
//! proxies indexed by compact class index) are bound the same way, by name.
//!
//! [`materialise`] then allocates every segment object whose class is bound (or is itself a
//! materialised segment object) in the tenant, with its format and size, fills its bytes,
//! and sets its pointers: to SmallIntegers, to other materialised objects, to bound
//! out-pointers, and to nil where the target was not bound (counted in the report, never
//! silent). The roots array is kept under a tenant root so a collection keeps it.
//! Every object keeps the segment's 12-bit identity hash ([`Tenant::alloc_with_hash`]), so
//! identity collections whose elements are all inside the segment answer as they did;
//! those holding bound out-pointers (Symbols, classes of the target base, whose hashes are
//! the base's) are rehashed by [`crate::rehash`], and the report says which were and which
//! could not be.

use crate::datastream::Val;
use crate::error::{Result, SegmentError};
use crate::project::{OutPointer, Project};
use crate::v3::{ClassRef, Oop, SegObject};
use cowheap_forwarders::Base;
use cowheap_heap::{BaseHeap, Format, ObjectIndex, ObjectSize, ObjectView, Value, Word};
use cowheap_squeak::{ByteOrder, Graph, class_name, class_name_in};
use cowheap_tenants::Tenant;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Special objects array index of the compact classes array.
const SPECIAL_COMPACT_CLASSES: usize = 28;
/// Special objects array index of the class Float (boxed: two 32-bit words in a V3 image).
const SPECIAL_FLOAT: usize = 9;
/// Special objects array index of the CharacterTable: the 256 Characters a V3 image's
/// `Character value:` answers (element `n + 1` for value `n`).
const SPECIAL_CHARACTER_TABLE: usize = 24;
/// Characters a CharacterTable holds.
const CHARACTER_TABLE_SIZE: i64 = 256;
/// The largest code point of an immediate Character, in either Spur word size (30 bits in
/// 32-bit Spur).
const MAX_IMMEDIATE_CHAR: i64 = (1 << 30) - 1;
/// Class instance variable holding the superclass.
const SUPERCLASS_SLOT: usize = 0;
/// Where a class may hold its instance variable names (an Array of Strings): slot 3 from
/// Squeak 3 on (`superclass methodDict format instanceVariables ...`), slot 4 in Squeak 2.x
/// (`superclass methodDict format subclasses instanceVariables ...`). [`BaseNames::of`]
/// finds which from the class `Point`, whose names are `x y` in every Squeak.
const INST_VARS_SLOTS: [usize; 2] = [3, 4];
/// Longest superclass chain followed.
const MAX_CHAIN: usize = 1_000;

/// Where names are read: a base heap, or a version of a base ([`Base`]), whose commits
/// changed some of the heap's objects (the `Smalltalk` dictionary, a class) and added
/// others (a class, a Symbol). A tenant's names are its version's: a global a commit
/// gave another value binds to that value, not to the one the heap under it holds.
pub trait Objects {
    /// Object `x`, if there is one.
    fn view(&self, x: ObjectIndex) -> Option<ObjectView<'_>>;
    /// How many objects (the indices are `0..count`).
    fn count(&self) -> usize;
    /// The base's named root `name` (`specialObjects`, `Smalltalk`).
    fn named_root(&self, name: &str) -> Option<Value>;
    /// The base's nil.
    fn nil_value(&self) -> Value;
    /// The name of class `x` ([`class_name`]).
    fn name_of_class(&self, x: ObjectIndex) -> Option<String>;
    /// Slot `i` of object `x`.
    fn slot_of(&self, x: ObjectIndex, i: usize) -> Option<Word> {
        self.view(x)?.slots.get(i).copied()
    }
}

impl Objects for BaseHeap {
    fn view(&self, x: ObjectIndex) -> Option<ObjectView<'_>> {
        self.object(x).ok()
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn named_root(&self, name: &str) -> Option<Value> {
        self.root(name)
    }
    fn nil_value(&self) -> Value {
        self.nil()
    }
    fn name_of_class(&self, x: ObjectIndex) -> Option<String> {
        class_name(self, x)
    }
}

impl Objects for Base {
    fn view(&self, x: ObjectIndex) -> Option<ObjectView<'_>> {
        self.object(x).ok()
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn named_root(&self, name: &str) -> Option<Value> {
        self.heap().root(name)
    }
    fn nil_value(&self) -> Value {
        self.heap().nil()
    }
    fn name_of_class(&self, x: ObjectIndex) -> Option<String> {
        class_name_in(&Version(self), x)
    }
}

/// The class of boxed Floats in `heap`: its special objects array's Float (slot 9), as the
/// virtual machine reads it, in the version given (a commit may have changed it). Not
/// [`BaseHeap::float_class`], which is the class of *immediate* floats (Spur's
/// SmallFloat64), and none in a V3 image. Time: O(1).
pub(crate) fn boxed_float_class<O: Objects + ?Sized>(heap: &O) -> Option<Value> {
    let special = heap.named_root("specialObjects")?.word().as_base()?;
    heap.slot_of(special, SPECIAL_FLOAT)
        .filter(|w| w.as_base().is_some())
        .map(Value::shared)
}

/// A version of a base read as a [`Graph`], for its class names.
struct Version<'a>(&'a Base);

impl Graph for Version<'_> {
    fn len(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }
    fn class_of(&self, i: u32) -> Option<u32> {
        self.0
            .object(ObjectIndex::from_u32(i))
            .ok()?
            .class
            .as_base()
            .map(ObjectIndex::as_u32)
    }
    fn slots_of(&self, i: u32) -> &[Word] {
        self.0
            .object(ObjectIndex::from_u32(i))
            .map_or(&[], |o| o.slots)
    }
    fn bytes_of(&self, i: u32) -> &[u8] {
        self.0
            .object(ObjectIndex::from_u32(i))
            .map_or(&[], |o| o.bytes)
    }
    fn aux_of(&self, i: u32) -> u32 {
        self.0.object(ObjectIndex::from_u32(i)).map_or(0, |o| o.aux)
    }
}

/// A base's names: what an out-pointer can bind to. Build once per base.
#[derive(Clone, Debug)]
pub struct BaseNames {
    globals: HashMap<String, Word>,
    symbols: HashMap<String, ObjectIndex>,
    compact: Vec<Option<ObjectIndex>>,
    /// The CharacterTable, in a base that keeps its Characters as objects (V3).
    character_table: Option<ObjectIndex>,
    /// Whether the base's Characters are immediates (Spur).
    immediate_characters: bool,
    nil: Value,
    true_: Option<Value>,
    false_: Option<Value>,
    inst_vars_slot: Option<usize>,
    special: Vec<Word>,
    by_value: HashMap<Word, String>,
    symbol_set: HashMap<ObjectIndex, ()>,
}

impl BaseNames {
    /// Indexes `heap`: globals, Symbols (objects of a class named `Symbol` or
    /// `ByteSymbol`), compact classes. Time: O(objects of the base).
    ///
    /// # Errors
    /// [`SegmentError::BaseMissing`] if the base has no special objects array.
    pub fn of<O: Objects + ?Sized>(heap: &O) -> Result<BaseNames> {
        let special = heap
            .named_root("specialObjects")
            .and_then(|v| v.word().as_base())
            .filter(|&x| heap.view(x).is_some())
            .ok_or(SegmentError::BaseMissing("special objects array"))?;
        let slot = |x: ObjectIndex, i: usize| heap.slot_of(x, i).and_then(|w| w.as_base());
        let mut globals = HashMap::new();
        if let Some(st) = heap
            .named_root("Smalltalk")
            .and_then(|v| v.word().as_base())
        {
            for (k, v) in dictionary(heap, st) {
                globals.insert(k, v);
            }
        }
        let mut symbols = HashMap::new();
        let mut is_symbol_class: HashMap<ObjectIndex, bool> = HashMap::new();
        for x in (0..heap.count()).filter_map(|i| u32::try_from(i).ok().map(ObjectIndex::from_u32))
        {
            let Some(o) = heap.view(x) else { continue };
            let Some(c) = o.class.as_base() else { continue };
            let sym = *is_symbol_class.entry(c).or_insert_with(|| {
                matches!(
                    heap.name_of_class(c).as_deref(),
                    Some("Symbol" | "ByteSymbol")
                )
            });
            if sym && o.slots.is_empty() {
                symbols.entry(byte_text(o.bytes)).or_insert(x);
            }
        }
        let compact = slot(special, SPECIAL_COMPACT_CLASSES)
            .map(|cc| (0..31).map(|k| slot(cc, k)).collect())
            .unwrap_or_default();
        let immediate_characters = heap
            .named_root("image.version")
            .and_then(|v| v.as_int())
            .is_some_and(|v| {
                crate::spur::VERSIONS
                    .iter()
                    .any(|&(s, _)| i64::from(s) == v)
            });
        let character_table = slot(special, SPECIAL_CHARACTER_TABLE)
            .filter(|&t| heap.view(t).is_some_and(|o| o.slots.len() >= 256));
        let word = |i: usize| heap.slot_of(special, i).map(Value::shared);
        let point = globals.get("Point").and_then(|w| w.as_base());
        let inst_vars_slot = point.and_then(|p| {
            INST_VARS_SLOTS.into_iter().find(|&i| {
                strings(heap, heap.slot_of(p, i), &mut { MAX_NAME_BYTES })
                    == Some(vec!["x".into(), "y".into()])
            })
        });
        let special_words = heap
            .view(special)
            .map(|o| o.slots.to_vec())
            .unwrap_or_default();
        let mut by_value = HashMap::new();
        for (k, &v) in &globals {
            // The smallest name, so the choice does not depend on hash order.
            let e = by_value.entry(v).or_insert_with(|| k.clone());
            if k < e {
                e.clone_from(k);
            }
        }
        let symbol_set = symbols.values().map(|&x| (x, ())).collect();
        Ok(BaseNames {
            inst_vars_slot,
            special: special_words,
            by_value,
            symbol_set,
            globals,
            symbols,
            compact,
            character_table,
            immediate_characters,
            nil: heap.nil_value(),
            false_: word(1),
            true_: word(2),
        })
    }

    /// The global named `name`.
    pub fn global(&self, name: &str) -> Option<Value> {
        self.globals.get(name).map(|&w| Value::shared(w))
    }

    /// The Symbol whose bytes read as `text` ([`byte_text`]).
    pub fn symbol(&self, text: &str) -> Option<Value> {
        self.symbols.get(text).map(|&x| Value::base(x))
    }

    /// Number of Symbols found.
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// The base's Character of value `n`, as its `Character value: n` answers it: an
    /// immediate in a base whose Characters are immediates (Spur), else element `n` of its
    /// CharacterTable (special objects slot 24, V3). `None` for a value the base has no
    /// Character of without running code (past 255 in a V3 image, where Squeak makes a new
    /// one), or a negative one. Time: O(1).
    pub fn character<O: Objects + ?Sized>(&self, heap: &O, n: i64) -> Option<Value> {
        if self.immediate_characters {
            let code = u32::try_from(n).ok().filter(|_| n <= MAX_IMMEDIATE_CHAR)?;
            return Some(Value::shared(Word::char_code(code)));
        }
        if !(0..CHARACTER_TABLE_SIZE).contains(&n) {
            return None;
        }
        let c = heap.slot_of(self.character_table?, usize::try_from(n).ok()?)?;
        c.as_base().map(Value::base)
    }

    /// The value of `x` if it is a Character of the base's CharacterTable (a V3 image's: its
    /// field 0, `value`, names the table's element that is `x`). Time: O(1).
    fn character_value<O: Objects + ?Sized>(&self, heap: &O, x: ObjectIndex) -> Option<u32> {
        let table = self
            .character_table
            .filter(|_| !self.immediate_characters)?;
        let n = heap.slot_of(x, 0)?.as_int()?;
        let at = usize::try_from(n).ok().filter(|&n| n < 256)?;
        (heap.slot_of(table, at)? == Word::base(x)).then_some(n as u32)
    }

    /// The base's compact class `k` (1-based).
    pub fn compact_class(&self, k: u8) -> Option<Value> {
        self.compact
            .get(usize::from(k).checked_sub(1)?)
            .copied()
            .flatten()
            .map(Value::base)
    }
}

/// The text of a Squeak byte string (a ByteSymbol's, a ByteString's): one character per
/// byte, the byte its code point, as a Squeak `Character value:` of each byte reads it
/// (Latin-1 from Squeak 3.8 on). Exact both ways: two byte strings have the same text only
/// if they have the same bytes, whatever the bytes (UTF-8 or not), so a Symbol named by its
/// text binds to the Symbol of those bytes and to no other. ASCII reads as itself. Time:
/// O(bytes).
pub fn byte_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The (key text, value) pairs of a Dictionary-shaped object (`tally array`, the array
/// holding Associations `key value`).
///
/// A key object is taken once, at its first Association: a hostile base whose array names
/// one long key a million times would otherwise copy its text a million times. (A
/// dictionary of the images holds each key once.) Time: O(its slots + its keys' texts).
fn dictionary<O: Objects + ?Sized>(heap: &O, d: ObjectIndex) -> Vec<(String, Word)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let Some(array) = heap.slot_of(d, 1).and_then(|w| w.as_base()) else {
        return out;
    };
    let Some(a) = heap.view(array) else {
        return out;
    };
    for assoc in a.slots.iter().filter_map(|w| w.as_base()) {
        let Some(o) = heap.view(assoc) else { continue };
        if o.slots.len() < 2 {
            continue;
        }
        let Some(key) = o.slots[0].as_base() else {
            continue;
        };
        if !seen.insert(key) {
            continue;
        }
        let Some(k) = heap.view(key) else { continue };
        if k.slots.is_empty() && !k.bytes.is_empty() {
            out.push((String::from_utf8_lossy(k.bytes).into_owned(), o.slots[1]));
        }
    }
    out
}

/// Bytes the instance variable names of one class and its superclasses may take, a
/// `String` each counted with its text: far past any image's (a few hundred names of a few
/// dozen bytes), and a bound on what a hostile base makes them copy (an Array naming one
/// long String a million times, or a class that is its own superclass).
const MAX_NAME_BYTES: usize = 1 << 20;

/// The texts of an Array of Strings (`Some(empty)` for nil), `None` if not one or if they
/// take more than `budget` bytes (a `String` each counted with its text), which they take
/// from it.
fn strings<O: Objects + ?Sized>(
    heap: &O,
    w: Option<Word>,
    budget: &mut usize,
) -> Option<Vec<String>> {
    let w = w?;
    if w == heap.nil_value().word() {
        return Some(Vec::new());
    }
    let a = heap.view(w.as_base()?)?;
    a.slots
        .iter()
        .map(|s| {
            let o = heap.view(s.as_base()?)?;
            let cost = o.bytes.len().checked_add(std::mem::size_of::<String>())?;
            *budget = budget.checked_sub(cost)?;
            (o.slots.is_empty() && !o.bytes.is_empty())
                .then(|| String::from_utf8_lossy(o.bytes).into_owned())
        })
        .collect()
}

impl BaseNames {
    /// A portable name for base object `x`: a Symbol by its string, a Character of the
    /// CharacterTable by its value, a class by its name and
    /// instance variable names (if the global of that name is this class), an object of the
    /// special objects array by its index, a global's value by the global's name. `None` if
    /// it has none. Time: O(1) expected, O(superclass chain) for a class.
    pub fn portable<O: Objects + ?Sized>(
        &self,
        heap: &O,
        x: ObjectIndex,
    ) -> Option<crate::tenant::OutRef> {
        use crate::tenant::OutRef;
        let w = Word::base(x);
        if self.symbol_set.contains_key(&x) {
            let o = heap.view(x)?;
            return Some(OutRef::Symbol(byte_text(o.bytes)));
        }
        if let Some(n) = self.character_value(heap, x) {
            return Some(OutRef::Character(n));
        }
        if let Some(name) = heap.name_of_class(x)
            && self.globals.get(&name) == Some(&w)
            && let Some(inst_vars) = self.all_inst_var_names(heap, x)
        {
            return Some(OutRef::Class { name, inst_vars });
        }
        if let Some(k) = self.special.iter().position(|&s| s == w) {
            return Some(OutRef::Special(u32::try_from(k).ok()?));
        }
        self.by_value.get(&w).map(|n| OutRef::Global(n.clone()))
    }

    /// The object a portable out-pointer names in this base, if it has it (a class only if
    /// its instance variable names are the same). `Base`, `Outside` and `Pinned` are not
    /// names: `None`.
    pub fn resolve<O: Objects + ?Sized>(
        &self,
        heap: &O,
        o: &crate::tenant::OutRef,
    ) -> Option<Value> {
        use crate::tenant::OutRef;
        match o {
            OutRef::Special(k) => self.special.get(*k as usize).map(|&w| Value::shared(w)),
            OutRef::Symbol(s) => self.symbol(s),
            OutRef::Global(g) => self.global(g),
            OutRef::Character(n) => self.character(heap, i64::from(*n)),
            OutRef::Class { name, inst_vars } => {
                let v = self.global(name)?;
                let x = v.word().as_base()?;
                (heap.name_of_class(x).as_deref() == Some(name.as_str())
                    && self.all_inst_var_names(heap, x).as_ref() == Some(inst_vars))
                .then_some(v)
            }
            OutRef::Base(_) | OutRef::Outside(_) | OutRef::Pinned { .. } => None,
        }
    }

    /// A class's instance variable names, inherited first. `None` if the base's class
    /// layout is unknown (no class `Point` with `x y`) or a class in the chain has no
    /// readable names. Time: O(superclass chain + names).
    pub fn all_inst_var_names<O: Objects + ?Sized>(
        &self,
        heap: &O,
        class: ObjectIndex,
    ) -> Option<Vec<String>> {
        let slot = self.inst_vars_slot?;
        let nil = heap.nil_value().word();
        let mut chain = Vec::new();
        let mut c = Some(class);
        while let Some(x) = c {
            if chain.len() >= MAX_CHAIN {
                return None;
            }
            chain.push(x);
            c = heap
                .slot_of(x, SUPERCLASS_SLOT)
                .filter(|&w| w != nil)
                .and_then(|w| w.as_base());
        }
        let mut names = Vec::new();
        let mut budget = MAX_NAME_BYTES;
        for &x in chain.iter().rev() {
            names.extend(strings(heap, heap.slot_of(x, slot), &mut budget)?);
        }
        Some(names)
    }
}

/// Why an out-pointer (or a compact class) was not bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unbound {
    /// The base has nothing of that name.
    Missing,
    /// The global of that name is not a class of that name.
    NotAClass,
    /// The class has other instance variables than the writer's.
    Shape {
        /// The writer's.
        writer: Vec<String>,
        /// The base's.
        base: Vec<String>,
    },
    /// Making it means running the writer's code.
    NeedsCode,
    /// An object carried by value in the stream, not materialised.
    CarriedObject,
}

impl fmt::Display for Unbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unbound::Missing => f.write_str("not in the base"),
            Unbound::NotAClass => f.write_str("the base's global of that name is not that class"),
            Unbound::Shape { writer, base } => write!(
                f,
                "other instance variables: writer ({}) base ({})",
                writer.join(" "),
                base.join(" ")
            ),
            Unbound::NeedsCode => f.write_str("made by running code"),
            Unbound::CarriedObject => f.write_str("an object carried in the stream"),
        }
    }
}

/// The binding of every out-pointer and compact class of a project against one base.
#[derive(Clone, Debug)]
pub struct Bindings {
    /// Out-pointer `k` is element `k - 1`.
    pub out: Vec<Result<Value, Unbound>>,
    /// The writer's compact class `k` (element `k`), if the project says it.
    pub compact: Vec<Option<(String, Result<Value, Unbound>)>>,
}

/// Binds a class by name, checking its shape against the writer's instance variables
/// where the stream gives them.
fn bind_class<O: Objects + ?Sized>(
    heap: &O,
    names: &BaseNames,
    project: &Project,
    name: &str,
) -> Result<Value, Unbound> {
    let v = names.global(name).ok_or(Unbound::Missing)?;
    let x = v.word().as_base().ok_or(Unbound::NotAClass)?;
    if heap.name_of_class(x).as_deref() != Some(name) {
        return Err(Unbound::NotAClass);
    }
    if let Some(writer) = project.structures.get(name) {
        let base = names
            .all_inst_var_names(heap, x)
            .ok_or(Unbound::NotAClass)?;
        if &base != writer {
            return Err(Unbound::Shape {
                writer: writer.clone(),
                base,
            });
        }
    }
    Ok(v)
}

/// Resolves every out-pointer of `project` and its compact classes in the base of
/// `names`. Time: O(out-pointers + their classes' superclass chains).
pub fn bind<O: Objects + ?Sized>(heap: &O, names: &BaseNames, project: &Project) -> Bindings {
    // `Smalltalk at: #x`-style out-pointers, each dictionary decoded once (its first key of
    // a text answers, as a scan would): not once per out-pointer naming it.
    let mut dictionaries: HashMap<ObjectIndex, HashMap<String, Word>> = HashMap::new();
    let out = project
        .out_pointers
        .iter()
        .map(|o| match o {
            OutPointer::Nil => Ok(names.nil),
            OutPointer::True => names.true_.ok_or(Unbound::Missing),
            OutPointer::False => names.false_.ok_or(Unbound::Missing),
            OutPointer::Int(i) => Ok(Value::int(i64::from(*i))),
            OutPointer::Symbol(s) => names.symbol(s).ok_or(Unbound::Missing),
            OutPointer::Class { name, .. } => bind_class(heap, names, project, name),
            OutPointer::Global(g) => names.global(g).ok_or(Unbound::Missing),
            OutPointer::Constructed {
                global,
                selector,
                args,
            } if selector == "at:" && args.len() == 1 && args[0].starts_with('#') => {
                let d = names
                    .global(global)
                    .and_then(|v| v.word().as_base())
                    .ok_or(Unbound::Missing)?;
                dictionaries
                    .entry(d)
                    .or_insert_with(|| {
                        let mut m = HashMap::new();
                        for (k, w) in dictionary(heap, d) {
                            m.entry(k).or_insert(w);
                        }
                        m
                    })
                    .get(&args[0][1..])
                    .map(|&w| Value::shared(w))
                    .ok_or(Unbound::Missing)
            }
            OutPointer::Constructed { .. } => Err(Unbound::NeedsCode),
            // A Character carried by value: on reload Squeak answers its own Character of
            // that value (`Character>>comeFullyUpOnReload:`), never the copy read.
            OutPointer::Object { class, stream } if class == "Character" => {
                match project.stream.instance(Val::Obj(*stream)) {
                    Some((_, [Val::Int(n), ..])) => {
                        names.character(heap, i64::from(*n)).ok_or(Unbound::Missing)
                    }
                    _ => Err(Unbound::CarriedObject),
                }
            }
            OutPointer::String(_) | OutPointer::Object { .. } => Err(Unbound::CarriedObject),
        })
        .collect();
    let compact = project
        .writer_compact_classes()
        .map(|cc| {
            cc.into_iter()
                .map(|n| {
                    n.map(|n| {
                        let b = bind_class(heap, names, project, &n);
                        (n, b)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Bindings { out, compact }
}

/// What binding and materialising did: the report `cowheap segment import` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Out-pointers in the table.
    pub out_pointers: usize,
    /// Out-pointers bound, by kind.
    pub bound_by_kind: BTreeMap<String, usize>,
    /// Out-pointers not bound, by kind.
    pub unbound_by_kind: BTreeMap<String, usize>,
    /// Every out-pointer not bound: its index (1-based), what it is, why.
    pub unbound: Vec<(u32, String, String)>,
    /// The writer's compact classes: index, name, bound or why not.
    pub compact: Vec<(u8, String, Option<String>)>,
    /// Segment objects.
    pub objects: usize,
    /// Objects materialised in the tenant.
    pub materialised: usize,
    /// Objects not materialised, by the class they needed.
    pub skipped: BTreeMap<String, usize>,
    /// Pointer fields set to nil because their target was not bound or not materialised.
    pub unresolved_fields: usize,
    /// Pointer fields set.
    pub fields: usize,
    /// Roots, and roots materialised.
    pub roots: (usize, usize),
    /// The hashed collections among the materialised objects, and what was rehashed
    /// (positions count the materialised objects in segment order).
    pub rehash: crate::rehash::RehashReport,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bound: usize = self.bound_by_kind.values().sum();
        writeln!(
            f,
            "out-pointers:    {} bound of {} ({})",
            bound,
            self.out_pointers,
            kinds(&self.bound_by_kind)
        )?;
        writeln!(
            f,
            "not bound:       {} ({})",
            self.unbound.len(),
            kinds(&self.unbound_by_kind)
        )?;
        for (k, what, why) in &self.unbound {
            writeln!(f, "  {k:>5}  {what}: {why}")?;
        }
        writeln!(f, "compact classes:")?;
        for (k, name, why) in &self.compact {
            match why {
                None => writeln!(f, "  {k:>5}  {name}: bound")?,
                Some(w) => writeln!(f, "  {k:>5}  {name}: {w}")?,
            }
        }
        writeln!(
            f,
            "objects:         {} materialised of {}; roots {} of {}",
            self.materialised, self.objects, self.roots.1, self.roots.0
        )?;
        writeln!(
            f,
            "fields:          {} set, {} left nil (target not bound)",
            self.fields, self.unresolved_fields
        )?;
        self.rehash.fmt(f)?;
        if !self.skipped.is_empty() {
            writeln!(f, "not materialised, by class:")?;
            for (c, n) in &self.skipped {
                writeln!(f, "  {n:>6}  {c}")?;
            }
        }
        Ok(())
    }
}

/// The objects of a segment made in a tenant.
#[derive(Debug)]
pub struct Materialised {
    /// Segment object `i`'s tenant object, if it was made.
    pub objects: Vec<Option<Value>>,
    /// The bindings used.
    pub bindings: Bindings,
    /// The report.
    pub report: ImportReport,
}

impl Materialised {
    /// The objects made, in segment order: the objects the report's rehash positions
    /// count. Time: O(segment objects).
    pub fn members(&self) -> Vec<Value> {
        self.objects.iter().flatten().copied().collect()
    }

    /// The hashed collections the model did not rehash and the image's own `rehash` should
    /// be sent to ([`crate::rehash::RehashReport::left_for_image`]), as values of the
    /// tenant, for `cowheap_vm`'s `Vm::rehash_by_image`. Time: O(segment objects).
    pub fn left_for_image(&self) -> Vec<Value> {
        let members = self.members();
        self.report
            .rehash
            .left_for_image()
            .into_iter()
            .filter_map(|i| members.get(i).copied())
            .collect()
    }
}

/// The class a segment object needs, as bound; `Err` names it for the report.
fn class_of(
    o: &SegObject,
    project: &Project,
    bindings: &Bindings,
    made: &[Option<Value>],
) -> Result<Value, String> {
    match o.vm_class() {
        ClassRef::Out(k) => match bindings.out.get(k as usize - 1) {
            Some(Ok(v)) => Ok(*v),
            _ => Err(project
                .out_pointer(k)
                .map_or_else(|| format!("out-pointer {k}"), ToString::to_string)),
        },
        ClassRef::Compact(k) => match bindings.compact.get(usize::from(k)) {
            Some(Some((_, Ok(v)))) => Ok(*v),
            Some(Some((n, Err(_)))) => Err(format!("class {n} (compact {k})")),
            _ => Err(format!("compact class {k}")),
        },
        ClassRef::Obj(i) => made
            .get(i as usize)
            .copied()
            .flatten()
            .ok_or_else(|| format!("a class in the segment (object {i})")),
    }
}

/// Materialises `project`'s segment in `tenant` (see the module doc) and keeps its roots
/// array under the tenant root `root_name`. Time: O(base objects) for the names, then
/// O(segment words).
///
/// # Errors
/// [`SegmentError::BaseMissing`] for a base without a special objects array;
/// [`SegmentError::Tenant`] if the tenant refuses an allocation (a quota, or the
/// allocator's `OutOfMemory`, which the memory to undo the import, reserved first, may also
/// answer); [`SegmentError::HashedCollection`] for a hashed collection with no free slot;
/// [`SegmentError::BadSegment`], before anything is made, for an object whose class binds
/// to something that is not a class (nil, a Symbol, a global that is none: no SmallInteger
/// format word in its field 2) in a base read from an image;
/// [`SegmentError::NotHeldByTarget`], before anything is made, for a compiled method whose
/// V3 header counts its literals otherwise than the base's image reads it (a Spur image). On
/// an error the root `root_name` is left as it was, and what was made is freed
/// ([`Tenant::free_unreachable_with`], in that reserved memory): the tenant's objects,
/// private bytes and quota are as before.
pub fn materialise(
    tenant: &mut Tenant,
    project: &Project,
    root_name: &str,
) -> Result<Materialised> {
    let base = tenant.base().clone();
    // The names of the tenant's version: what its commits changed or added included.
    let names = BaseNames::of(&*base)?;
    let bindings = bind(&*base, &names, project);
    let seg = &project.segment;
    let mut report = ImportReport {
        out_pointers: project.out_pointers.len(),
        objects: seg.objects.len(),
        ..ImportReport::default()
    };
    for (k, (o, b)) in (1u32..).zip(project.out_pointers.iter().zip(&bindings.out)) {
        match b {
            Ok(_) => *report.bound_by_kind.entry(o.kind().to_owned()).or_default() += 1,
            Err(why) => {
                *report
                    .unbound_by_kind
                    .entry(o.kind().to_owned())
                    .or_default() += 1;
                report.unbound.push((k, o.to_string(), why.to_string()));
            }
        }
    }
    for (k, c) in (0u8..).zip(&bindings.compact) {
        if let Some((name, b)) = c {
            report
                .compact
                .push((k, name.clone(), b.as_ref().err().map(ToString::to_string)));
        }
    }
    // Every object that can be made has a class that is a class, checked before the tenant
    // is touched: a class word naming an out-pointer that binds to nil, a Symbol or a
    // global that is no class (which the stream may say) would make an object of no class
    // the image can read. (A base built rather than read from an image takes any object as
    // a class, as its tenants do.)
    let kind = crate::Immediates::of(&*base);
    for o in seg
        .objects
        .iter()
        .filter(|_| kind != crate::Immediates::Any)
    {
        let (is_class, made) = match o.vm_class() {
            ClassRef::Obj(i) => (
                seg.objects.get(i as usize).is_some_and(|c| {
                    c.format <= 4
                        && matches!(c.pointers.get(crate::CLASS_FORMAT_SLOT), Some(Oop::Int(_)))
                }),
                true,
            ),
            // Not bound: not made, and reported.
            _ => match class_of(o, project, &bindings, &[]) {
                Ok(c) => (crate::is_class(tenant, c)?, true),
                Err(_) => (true, false),
            },
        };
        if !is_class {
            return Err(SegmentError::BadSegment(
                "an object whose class is not a class (no format word)",
            ));
        }
        // A V3 method's header counts its literals in other bits than a Spur image's.
        if made && o.format >= 12 {
            let header = match o.pointers.first() {
                Some(&Oop::Int(h)) => Some(i64::from(h)),
                _ => None,
            };
            kind.check_method(header, o.pointers.len())?;
        }
    }
    // Allocate: classes inside the segment before their instances, in one pass in that
    // order; a member whose class could not be made is skipped (and reported below).
    // The memory to free the members again, had before the first is made.
    let reserve = tenant.reserve_collection(seg.objects.len())?;
    let mut made: Vec<Option<Value>> = vec![None; seg.objects.len()];
    // What fails from here (a quota, a hashed collection the rehash refuses) frees the
    // members made so far before it is answered.
    let mut build = |tenant: &mut Tenant, made: &mut Vec<Option<Value>>| -> Result<()> {
        // The boxed Float class of the tenant's version, whose instances keep the double
        // as little-endian bytes (a V3 segment's Float has its high word first).
        let float_class = boxed_float_class(&*base);
        // A V3 segment's 12-bit hashes, as wide as the base's (no wider in any image).
        let hash_bits = base.heap().hash_bits();
        let mut nils: Vec<Value> = Vec::new();
        let order =
            crate::class_first_order(seg.objects.len(), |i| match seg.objects[i].vm_class() {
                ClassRef::Obj(j) => Some(j as usize),
                _ => None,
            });
        for i in order {
            let o = &seg.objects[i];
            let Ok(class) = class_of(o, project, &bindings, made) else {
                continue;
            };
            let (format, size, bytes) = layout(
                o,
                seg.order,
                float_class.is_some_and(|f| f.same_word(class)),
            );
            // Slots start nil and are set below; the identity hash is the segment's.
            nils.resize(size.slots, names.nil);
            let v = tenant.alloc_with_hash(
                class,
                format,
                &nils[..size.slots],
                &bytes,
                crate::fit_hash(u32::from(o.hash), hash_bits),
            )?;
            made[i] = Some(v);
        }
        for (i, o) in seg.objects.iter().enumerate() {
            let Some(v) = made[i] else {
                let c = class_of(o, project, &bindings, made)
                    .err()
                    .unwrap_or_default();
                *report.skipped.entry(c).or_default() += 1;
                continue;
            };
            report.materialised += 1;
            for (k, &p) in o.pointers.iter().enumerate() {
                let target = match p {
                    Oop::Int(n) => Some(Value::int(i64::from(n))),
                    Oop::Obj(j) => made.get(j as usize).copied().flatten(),
                    Oop::Out(j) => bindings
                        .out
                        .get(j as usize - 1)
                        .and_then(|b| b.as_ref().ok())
                        .copied(),
                };
                match target {
                    Some(t) => {
                        // Slots start nil: only set what is not nil.
                        if !t.same_word(names.nil) {
                            tenant.set_slot(v, k, t)?;
                        }
                        report.fields += 1;
                    }
                    None => report.unresolved_fields += 1,
                }
            }
        }
        report.roots = (
            seg.roots().len(),
            seg.roots()
                .iter()
                .filter(|r| match r {
                    Oop::Obj(j) => made.get(*j as usize).copied().flatten().is_some(),
                    _ => true,
                })
                .count(),
        );
        // Bound out-pointers carry the target base's identity hashes: rehash what holds them.
        // Before the root is named: a collection the rehash refuses frees the members and
        // leaves a root of that name as it was.
        let members: Vec<Value> = made.iter().flatten().copied().collect();
        report.rehash = crate::rehash::rehash_members(tenant, &names, &members)?;
        if let Some(Some(roots)) = made.first() {
            tenant.set_root(root_name, *roots)?;
        }
        Ok(())
    };
    if let Err(e) = build(tenant, &mut made) {
        // In the memory reserved before the first member: not refused.
        let _ = tenant.free_unreachable_with(made.iter().flatten(), reserve);
        return Err(e);
    }
    Ok(Materialised {
        objects: made,
        bindings,
        report,
    })
}

/// The cowheap format, size and bytes of a segment object. A context's words past its
/// stack pointer become nil slots; a boxed Float (two words, high word first in a
/// 6502/6504 segment) becomes the little-endian double a base holds.
fn layout(o: &SegObject, order: ByteOrder, is_float: bool) -> (Format, ObjectSize, Vec<u8>) {
    let words_le = |raw: &[u32]| {
        raw.iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    match o.format {
        0..=4 => (
            if o.format == 4 {
                Format::Weak
            } else {
                Format::Pointers
            },
            ObjectSize {
                slots: o.pointers.len() + o.raw.len(),
                bytes: 0,
            },
            Vec::new(),
        ),
        6 => {
            let bytes = if is_float && o.raw.len() == 2 {
                ((u64::from(o.raw[0]) << 32) | u64::from(o.raw[1]))
                    .to_le_bytes()
                    .to_vec()
            } else {
                words_le(&o.raw)
            };
            (
                Format::Words,
                ObjectSize {
                    slots: 0,
                    bytes: bytes.len(),
                },
                bytes,
            )
        }
        8..=11 => {
            let b = o.bytes(order);
            (
                Format::Bytes,
                ObjectSize {
                    slots: 0,
                    bytes: b.len(),
                },
                b,
            )
        }
        _ => {
            let b = o.bytes(order);
            (
                Format::CompiledMethod,
                ObjectSize {
                    slots: o.pointers.len(),
                    bytes: b.len(),
                },
                b,
            )
        }
    }
}
