//! Rehashing the hashed collections of an imported segment.
//!
//! A segment's members keep their identity hashes on import, but the objects its
//! out-pointers bind to in the target base (Symbols, classes, globals) have that base's
//! hashes, not the writer's. A hashed collection holding them then keeps its elements in
//! the buckets of the old hashes, and lookups miss. [`rehash`] finds the imported objects
//! whose class is, or inherits from, `Set`, `IdentitySet`, `Dictionary`,
//! `IdentityDictionary` or `MethodDictionary` in the target base (by the class names of
//! the superclass chain, most specific first) and puts every element back where Squeak's
//! `scanFor:` looks for it:
//!
//! - the table has `n` slots; an element with hash `h` is looked for from slot
//!   `h \\ n + 1` (1-based, `\\` the floored modulo) to the end, then from slot 1: the first
//!   slot that holds it or nil ends the scan (linear probing);
//! - `Set` and `IdentitySet` keep their elements in `array`; `Dictionary` and
//!   `IdentityDictionary` keep Associations there, hashed by their key; a
//!   `MethodDictionary` keeps its keys (selectors) in its own indexable slots and the
//!   values at the same index of `array`;
//! - identity collections (`IdentitySet`, `IdentityDictionary`, `MethodDictionary`) hash
//!   by identity hash ([`Tenant::identity_hash`]); equality collections (`Set`,
//!   `Dictionary`) by `hash`: a SmallInteger's is its value, and for an object the
//!   target image's own `hash` method is looked up (the element's class, then its
//!   superclasses, in their method dictionaries) and recognised (see below).
//!
//! **`hash` as the target image defines it.** Squeak versions define `hash` differently,
//! so the method found is recognised, never assumed:
//!
//! - a method whose primitive is 75 answers the identity hash (`Symbol>>hash` in the Squeak
//!   2.x and 3.x images, so an equality `Dictionary` keyed by Symbols hashes them as an
//!   `IdentityDictionary` would);
//! - the `String>>hash` of those images, known by its literal frame (`#asciiValue 127 106
//!   21845 3 48`) on a byte object, is computed here ([`old_string_hash`]): it depends
//!   only on the length, the first byte and the next-to-last byte;
//! - anything else (the later `stringHash:initialHash:` of Squeak 3.7 on, seeded with a
//!   class's hash; a class's own `hash`) is not computed, and its collection is reported.
//!
//! What is not rehashed is reported, never guessed: equality collections holding an object
//! whose `hash` method is not recognised; identity collections holding immediates (whose
//! identity hash is the VM's business); tables over 4,096 slots of an identity collection
//! (later Squeaks scale the identity hash for those, earlier ones do not); collections
//! whose layout is not the expected one; collections holding a key twice (after an import,
//! typically nil for several out-pointers that did not bind: no placement makes such a
//! table answer for both). A collection whose every element is already found from its hash
//! is left alone.
//!
//! **Hostile tables.** A table with no free slot is refused with
//! [`crate::SegmentError::HashedCollection`] ([`TableProblem::NoFreeSlot`]): Squeak never
//! makes one (it grows a table before it fills), and a lookup of an absent key would find
//! no end in it. Whatever the clustering of the hashes, the work is linear in the table:
//! whether an element is found from its hash is read off the run of occupied slots before
//! it (one pass), and re-inserting takes each element's first free slot from a
//! "next free slot" forest with path halving, never by walking a cluster slot by slot. A
//! table of 200,000 slots whose every element has the same hash is rehashed in one pass,
//! where probing element by element would take 10^10 steps.
//!
//! Time: O(objects given + the superclass chains of their classes, once per class (and the
//! method dictionaries along them, once per element class) + the slots of the hashed
//! collections among them, times the amortised logarithm of the forest).

use crate::bind::BaseNames;
use crate::error::Result;
use cowheap_heap::{BaseHeap, Format, Value, Word};
use cowheap_squeak::class_name;
use cowheap_tenants::Tenant;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Longest superclass chain followed.
const MAX_CHAIN: usize = 1_000;
/// Identity tables larger than this hash differently in different Squeak versions.
const SCALED_ABOVE: usize = 4_096;
/// The primitive that answers the receiver's identity hash (`Object>>identityHash`, and
/// `Symbol>>hash` in Squeak 2.x and 3.x).
const PRIMITIVE_IDENTITY_HASH: i64 = 75;

/// What is wrong with a hashed collection's table that no lookup can work on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableProblem {
    /// Every slot holds an element: a lookup of an absent key has no nil to end on.
    NoFreeSlot {
        /// The table's slots.
        slots: usize,
    },
    /// A probe went round the whole table without finding its element or a free slot (a
    /// table whose elements changed under the rehash; never in one pass of [`rehash`]).
    ProbeOverrun {
        /// The table's slots.
        slots: usize,
    },
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableProblem::NoFreeSlot { slots } => {
                write!(f, "a table of {slots} slots with no free slot")
            }
            TableProblem::ProbeOverrun { slots } => {
                write!(f, "a probe longer than its table of {slots} slots")
            }
        }
    }
}

/// How the target image's `hash` method for a class computes, as far as it is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashMethod {
    /// Primitive 75: the identity hash.
    Identity,
    /// The `String>>hash` of Squeak 2.x and 3.x ([`old_string_hash`]).
    OldString,
    /// Not recognised (or no `hash` method found).
    Unknown,
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

/// The hashed collections Squeak's image segments rehash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// `Set`: elements in `array`, by `hash`.
    Set,
    /// `IdentitySet`: elements in `array`, by identity hash.
    IdentitySet,
    /// `Dictionary`: Associations in `array`, by the key's `hash`.
    Dictionary,
    /// `IdentityDictionary`: Associations in `array`, by the key's identity hash.
    IdentityDictionary,
    /// `MethodDictionary`: keys in the indexable slots, values in `array`, by identity hash.
    MethodDictionary,
}

impl Kind {
    /// The kind of a class named `name`, if it is one of the five.
    pub fn of_name(name: &str) -> Option<Kind> {
        Some(match name {
            "Set" => Kind::Set,
            "IdentitySet" => Kind::IdentitySet,
            "Dictionary" => Kind::Dictionary,
            "IdentityDictionary" => Kind::IdentityDictionary,
            "MethodDictionary" => Kind::MethodDictionary,
            _ => return None,
        })
    }

    /// Whether it hashes by identity.
    pub fn by_identity(self) -> bool {
        matches!(
            self,
            Kind::IdentitySet | Kind::IdentityDictionary | Kind::MethodDictionary
        )
    }

    /// Whether its table holds Associations hashed by their key.
    fn associations(self) -> bool {
        matches!(self, Kind::Dictionary | Kind::IdentityDictionary)
    }
}

/// A hashed collection that was not rehashed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotRehashed {
    /// The collection: its position in the objects given to [`rehash`].
    pub object: usize,
    /// Its class's name (or the name of the hashed-collection class it inherits from).
    pub class: String,
    /// Why.
    pub why: String,
}

/// What [`rehash`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RehashReport {
    /// Hashed collections found among the objects.
    pub collections: usize,
    /// Collections whose every element was already where its hash leads: left alone.
    pub in_place: usize,
    /// Collections rehashed, by kind.
    pub rehashed_by_kind: BTreeMap<String, usize>,
    /// The collections rehashed: their positions in the objects given to [`rehash`].
    pub rehashed: Vec<usize>,
    /// Elements moved in all.
    pub moved: usize,
    /// Collections not rehashed (their elements' hashes cannot be computed here).
    pub not_rehashed: Vec<NotRehashed>,
}

impl fmt::Display for RehashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .rehashed_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            f,
            "hashed collections: {} ({} rehashed{}{}, {} in place, {} not rehashed)",
            self.collections,
            self.rehashed.len(),
            if kinds.is_empty() { "" } else { ": " },
            kinds.join(", "),
            self.in_place,
            self.not_rehashed.len()
        )?;
        let mut why: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for n in &self.not_rehashed {
            *why.entry((&n.class, &n.why)).or_default() += 1;
        }
        for ((class, why), n) in why {
            writeln!(f, "  not rehashed: {n} {class}: {why}")?;
        }
        Ok(())
    }
}

/// The layout of a hashed collection.
#[derive(Clone, Copy, Debug)]
struct Layout {
    kind: Kind,
    /// Slot of `array`.
    array: usize,
    /// Named slots of the object's class (where a MethodDictionary's keys start).
    named: usize,
}

/// Finds hashed collections by their class's superclass chain in one base, and the
/// `hash` method of their elements' classes.
struct Classifier<'a> {
    heap: &'a BaseHeap,
    names: &'a BaseNames,
    cache: HashMap<Word, Option<(Layout, String)>>,
    /// The `hash` method each element class resolves to.
    hashes: HashMap<Word, HashMethod>,
}

impl<'a> Classifier<'a> {
    fn new(heap: &'a BaseHeap, names: &'a BaseNames) -> Classifier<'a> {
        Classifier {
            heap,
            names,
            cache: HashMap::new(),
            hashes: HashMap::new(),
        }
    }

    /// The layout and class name of `v`'s class, if it is a hashed collection.
    fn classify(&mut self, t: &Tenant, v: Value) -> Result<Option<(Layout, String)>> {
        let class = t.class_of(v)?;
        if let Some(c) = self.cache.get(&class.word()) {
            return Ok(c.clone());
        }
        let found = self.chain(t, class)?;
        self.cache.insert(class.word(), found.clone());
        Ok(found)
    }

    /// How `class`'s instances answer `hash`: the first method for `#hash` up the
    /// superclass chain (slot 0 the superclass, slot 1 the method dictionary), recognised.
    fn hash_method(&mut self, t: &Tenant, class: Value) -> Result<HashMethod> {
        if let Some(&m) = self.hashes.get(&class.word()) {
            return Ok(m);
        }
        let found = self.find_hash_method(t, class)?;
        self.hashes.insert(class.word(), found);
        Ok(found)
    }

    fn find_hash_method(&self, t: &Tenant, class: Value) -> Result<HashMethod> {
        let nil = self.heap.nil();
        let Some(selector) = self.names.symbol("hash") else {
            return Ok(HashMethod::Unknown);
        };
        let is_pointers = |v: Value| -> Result<bool> {
            Ok(v.word().is_ref() && !v.same_word(nil) && t.format(v)? == Format::Pointers)
        };
        let mut c = class;
        for _ in 0..MAX_CHAIN {
            if !is_pointers(c)? || t.size(c)?.slots < 2 {
                return Ok(HashMethod::Unknown);
            }
            let md = t.slot(c, 1)?;
            if is_pointers(md)? && t.size(md)?.slots >= 2 {
                let values = t.slot(md, 1)?;
                if is_pointers(values)? {
                    let n = t.size(values)?.slots;
                    let slots = t.size(md)?.slots;
                    // The keys are the last `n` slots of the dictionary, after its named ones.
                    if let Some(named) = slots.checked_sub(n) {
                        for i in 0..n {
                            let k = t.slot(md, named + i)?;
                            if k.word().is_ref() && t.identical(k, selector)? {
                                return self.recognise(t, t.slot(values, i)?);
                            }
                        }
                    }
                }
            }
            c = t.slot(c, 0)?;
        }
        Ok(HashMethod::Unknown)
    }

    /// What a CompiledMethod found for `#hash` computes (see the module doc).
    fn recognise(&self, t: &Tenant, method: Value) -> Result<HashMethod> {
        if !method.word().is_ref() || t.format(method)? != Format::CompiledMethod {
            return Ok(HashMethod::Unknown);
        }
        let Some(header) = t.slot(method, 0)?.as_int() else {
            return Ok(HashMethod::Unknown);
        };
        // A V3 method header: the primitive in the low 9 bits, the literal count above.
        let primitive = header & 0x1FF;
        let literals = usize::try_from((header >> 9) & 0xFF).unwrap_or(0);
        if primitive == PRIMITIVE_IDENTITY_HASH {
            return Ok(HashMethod::Identity);
        }
        if primitive != 0 || literals < 6 || t.size(method)?.slots < 1 + 6 {
            return Ok(HashMethod::Unknown);
        }
        let selector = t.slot(method, 1)?;
        let selector_ok = selector.word().is_ref()
            && t.format(selector)? == Format::Bytes
            && t.bytes(selector)? == b"asciiValue";
        let mut ints = [0i64; 5];
        for (i, v) in ints.iter_mut().enumerate() {
            match t.slot(method, 2 + i)?.as_int() {
                Some(x) => *v = x,
                None => return Ok(HashMethod::Unknown),
            }
        }
        Ok(if selector_ok && ints == [127, 106, 21_845, 3, 48] {
            HashMethod::OldString
        } else {
            HashMethod::Unknown
        })
    }

    /// The hash an element is placed by: `Ok(Err(why))` if it is not computed here.
    fn hash_of(&mut self, t: &Tenant, kind: Kind, key: Value) -> Result<Result<i64, String>> {
        if let Some(i) = key.as_int() {
            return Ok(if kind.by_identity() {
                Err("an identity collection holding SmallIntegers".into())
            } else {
                Ok(i)
            });
        }
        if !key.word().is_ref() {
            return Ok(Err("an immediate other than a SmallInteger".into()));
        }
        let by = if kind.by_identity() {
            HashMethod::Identity
        } else {
            let class = t.class_of(key)?;
            match self.hash_method(t, class)? {
                HashMethod::OldString if t.format(key)? != Format::Bytes => HashMethod::Unknown,
                m => m,
            }
        };
        Ok(match by {
            HashMethod::Identity => Ok(i64::from(t.identity_hash(key)?)),
            HashMethod::OldString => Ok(old_string_hash(t.bytes(key)?)),
            HashMethod::Unknown => Err(
                "an equality collection of objects whose hash method is not recognised here".into(),
            ),
        })
    }

    /// Whether `a` and `b` are the same key of a collection of `kind`: identical, or, in an
    /// equality collection, two byte objects hashed by the old `String>>hash` with the same
    /// bytes (`String>>=`).
    fn same_key(&mut self, t: &Tenant, kind: Kind, a: Value, b: Value) -> Result<bool> {
        if t.identical(a, b)? {
            return Ok(true);
        }
        if kind.by_identity() || !a.word().is_ref() || !b.word().is_ref() {
            return Ok(false);
        }
        for v in [a, b] {
            let class = t.class_of(v)?;
            if t.format(v)? != Format::Bytes || self.hash_method(t, class)? != HashMethod::OldString
            {
                return Ok(false);
            }
        }
        Ok(t.bytes(a)? == t.bytes(b)?)
    }

    fn chain(&self, t: &Tenant, class: Value) -> Result<Option<(Layout, String)>> {
        let nil = self.heap.nil();
        let own_named = class
            .word()
            .as_base()
            .and_then(|x| self.names.all_inst_var_names(self.heap, x))
            .map(|v| v.len());
        let mut c = class;
        for _ in 0..MAX_CHAIN {
            if c.same_word(nil) || !c.word().is_ref() {
                return Ok(None);
            }
            if let Some(x) = c.word().as_base()
                && let Some(name) = class_name(self.heap, x)
                && let Some(kind) = Kind::of_name(&name)
            {
                let ivars = self.names.all_inst_var_names(self.heap, x);
                // Every Squeak's HashedCollection: `tally array`.
                let array = ivars
                    .as_ref()
                    .map_or(Some(1), |v| v.iter().position(|n| n == "array"));
                let Some(array) = array else {
                    return Ok(None);
                };
                let named = own_named.or(ivars.map(|v| v.len())).unwrap_or(2);
                let shown = class
                    .word()
                    .as_base()
                    .and_then(|x| class_name(self.heap, x))
                    .unwrap_or(name);
                return Ok(Some((Layout { kind, array, named }, shown)));
            }
            c = t.slot(c, 0)?;
        }
        Ok(None)
    }
}

/// Where linear probing from `hash` in a table of `n` slots first finds `key` or an empty
/// slot (0-based), as Squeak's `scanFor:`; `None` if it went round the table without one.
/// At most `n` steps; used one key at a time ([`lookup`]), never per element of a rehash.
fn probe(
    n: usize,
    hash: i64,
    mut at: impl FnMut(usize) -> Result<Option<bool>>,
) -> Result<Option<usize>> {
    if n == 0 {
        return Ok(None);
    }
    let start = home(hash, n);
    for i in (start..n).chain(0..start) {
        // Some(true): the key; Some(false): another; None: empty.
        match at(i)? {
            Some(true) | None => return Ok(Some(i)),
            Some(false) => {}
        }
    }
    Ok(None)
}

/// The slot (0-based) a hash is first looked for in, in a table of `n > 0` slots.
fn home(hash: i64, n: usize) -> usize {
    // rem_euclid of a positive modulus is in 0..n, which fits in usize.
    usize::try_from(hash.rem_euclid(i64::try_from(n).unwrap_or(i64::MAX))).unwrap_or(0)
}

/// One element of a table: the key hashed, and what moves with it.
struct Element {
    index: usize,
    hash: i64,
}

/// Whether every element is found from its hash, in one pass: linear probing from an
/// element's home reaches it iff every slot from the home up to it is occupied, that is
/// iff its distance from its home is at most the run of occupied slots just before it.
/// `occupied` must have a free slot.
fn all_in_place(occupied: &[bool], elems: &[Element]) -> bool {
    let n = occupied.len();
    let Some(free) = occupied.iter().position(|o| !o) else {
        return false;
    };
    // run[i]: the occupied slots immediately before slot i, going backwards (cyclically).
    let mut run = vec![0usize; n];
    let mut r = 0;
    for k in 1..=n {
        let i = (free + k) % n;
        run[i] = r;
        r = if occupied[i] { r + 1 } else { 0 };
    }
    elems.iter().all(|e| {
        let distance = (e.index + n - home(e.hash, n)) % n;
        distance <= run[e.index]
    })
}

/// The first free slot at or after `i` (cyclically) in a table of `next.len() - 1` slots,
/// kept as a forest: a free slot is its own root, an occupied slot points at the slot
/// after it, and the last slot's successor is the sentinel `next.len() - 1`, always a
/// root, so the forest has no cycle; a search that ends on the sentinel starts again
/// from slot 0. Paths are halved on the way. `None` for a full table.
fn next_free(next: &mut [usize], i: usize) -> Option<usize> {
    let sentinel = next.len().checked_sub(1)?;
    let root = |next: &mut [usize], mut x: usize| -> Option<usize> {
        // Every step halves the path or ends it: bounded by the table, whatever it holds.
        for _ in 0..=next.len() {
            let p = *next.get(x)?;
            if p == x {
                return Some(x);
            }
            let grand = *next.get(p)?;
            next[x] = grand;
            x = grand;
        }
        None
    };
    match root(next, i)? {
        r if r != sentinel => Some(r),
        _ => root(next, 0).filter(|&r| r != sentinel),
    }
}

/// Marks slot `at` occupied in the forest of [`next_free`].
fn occupy(next: &mut [usize], at: usize) {
    next[at] = at + 1;
}

/// The occupied slots of a collection's table.
fn elements(
    t: &Tenant,
    cls: &mut Classifier<'_>,
    v: Value,
    l: Layout,
    nil: Value,
) -> Result<Result<(usize, Vec<Element>), String>> {
    let array = t.slot(v, l.array)?;
    if !array.word().is_ref() || array.same_word(nil) {
        return Ok(Err("no array".into()));
    }
    let n = t.size(array)?.slots;
    let keys_in_self = l.kind == Kind::MethodDictionary;
    if keys_in_self && t.size(v)?.slots != l.named + n {
        return Ok(Err("keys and values of different sizes".into()));
    }
    if l.kind.by_identity() && n > SCALED_ABOVE {
        return Ok(Err(format!(
            "a table of {n} slots (identity hashes are scaled over {SCALED_ABOVE} in later Squeaks)"
        )));
    }
    let mut out = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for i in 0..n {
        let slot = if keys_in_self {
            t.slot(v, l.named + i)?
        } else {
            t.slot(array, i)?
        };
        if slot.same_word(nil) {
            continue;
        }
        let key = if l.kind.associations() {
            if !slot.word().is_ref() || t.size(slot)?.slots < 1 {
                return Ok(Err("an element that is not an Association".into()));
            }
            t.slot(slot, 0)?
        } else {
            slot
        };
        if !keys.insert(key.word().bits()) {
            return Ok(Err(format!(
                "a key held twice ({}; an out-pointer that did not bind reads nil)",
                if key.same_word(nil) {
                    "nil"
                } else {
                    "an object"
                }
            )));
        }
        match cls.hash_of(t, l.kind, key)? {
            Ok(hash) => out.push(Element { index: i, hash }),
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok((n, out)))
}

/// Rehashes the hashed collections among `objects` in `tenant` (see the module doc), with
/// `names` the names of the tenant's base. Time: linear in the collections' slots,
/// whatever their hashes (see "Hostile tables" in the module doc).
///
/// # Errors
/// [`crate::SegmentError::HashedCollection`] for a table with no free slot (objects before
/// it may have been rehashed already); [`crate::SegmentError::Tenant`] if the tenant
/// refuses a read or write (a quota).
pub fn rehash(tenant: &mut Tenant, names: &BaseNames, objects: &[Value]) -> Result<RehashReport> {
    let base = tenant.base().clone();
    let heap = base.heap();
    let nil = heap.nil();
    let mut cls = Classifier::new(heap, names);
    let mut report = RehashReport::default();
    for (pos, &v) in objects.iter().enumerate() {
        if !v.word().is_ref() || !matches!(tenant.format(v)?, Format::Pointers) {
            continue;
        }
        let Some((layout, class)) = cls.classify(tenant, v)? else {
            continue;
        };
        report.collections += 1;
        let (n, elems) = match elements(tenant, &mut cls, v, layout, nil)? {
            Ok(e) => e,
            Err(why) => {
                report.not_rehashed.push(NotRehashed {
                    object: pos,
                    class,
                    why,
                });
                continue;
            }
        };
        if n > 0 && elems.len() >= n {
            return Err(crate::SegmentError::HashedCollection {
                object: pos,
                class,
                problem: TableProblem::NoFreeSlot { slots: n },
            });
        }
        // Is every element found from its hash?
        let mut occupied = vec![false; n];
        for e in &elems {
            occupied[e.index] = true;
        }
        if all_in_place(&occupied, &elems) {
            report.in_place += 1;
            continue;
        }
        let array = tenant.slot(v, layout.array)?;
        let table = |t: &Tenant, i: usize| -> Result<Value> {
            Ok(if layout.kind == Kind::MethodDictionary {
                t.slot(v, layout.named + i)?
            } else {
                t.slot(array, i)?
            })
        };
        // Take every element out, then put each back at the first free slot from its home.
        let mut taken = Vec::with_capacity(elems.len());
        for e in &elems {
            let value = tenant.slot(array, e.index)?;
            let key_slot = table(tenant, e.index)?;
            taken.push((e.hash, key_slot, value, e.index));
            if layout.kind == Kind::MethodDictionary {
                tenant.set_slot(v, layout.named + e.index, nil)?;
            }
            tenant.set_slot(array, e.index, nil)?;
        }
        let mut next: Vec<usize> = (0..=n).collect();
        let mut moved = 0;
        for (hash, key_slot, value, old) in taken {
            let Some(at) = next_free(&mut next, home(hash, n)) else {
                return Err(crate::SegmentError::HashedCollection {
                    object: pos,
                    class,
                    problem: TableProblem::ProbeOverrun { slots: n },
                });
            };
            occupy(&mut next, at);
            if layout.kind == Kind::MethodDictionary {
                tenant.set_slot(v, layout.named + at, key_slot)?;
            }
            tenant.set_slot(array, at, value)?;
            moved += usize::from(at != old);
        }
        report.moved += moved;
        report.rehashed.push(pos);
        *report
            .rehashed_by_kind
            .entry(format!("{:?}", layout.kind))
            .or_default() += 1;
    }
    Ok(report)
}

/// Looks `key` up in the hashed collection `collection` as Squeak's `scanFor:` does (see
/// the module doc): answers the Association's value for a dictionary, the value for a
/// MethodDictionary, the element for a set; `None` if absent. Keys match if identical, or,
/// in an equality collection, if both are byte strings hashed by the old `String>>hash`
/// with the same bytes. For tests and tools that check a collection answers its lookups.
/// Time: O(table) at worst (one probe, at most once round the table).
///
/// # Errors
/// [`crate::SegmentError::BadSegment`] if `collection` is not a hashed collection whose
/// keys' hashes are computable here; [`crate::SegmentError::Tenant`] for a bad reference.
pub fn lookup(
    tenant: &Tenant,
    names: &BaseNames,
    collection: Value,
    key: Value,
) -> Result<Option<Value>> {
    let heap = tenant.base().heap();
    let nil = heap.nil();
    let mut cls = Classifier::new(heap, names);
    let bad = crate::SegmentError::BadSegment;
    let (l, _) = cls
        .classify(tenant, collection)?
        .ok_or(bad("not a hashed collection"))?;
    let hash = cls
        .hash_of(tenant, l.kind, key)?
        .map_err(|_| bad("a key whose hash is not computed here"))?;
    let array = tenant.slot(collection, l.array)?;
    let n = tenant.size(array)?.slots;
    let table = |i: usize| -> Result<Value> {
        Ok(if l.kind == Kind::MethodDictionary {
            tenant.slot(collection, l.named + i)?
        } else {
            tenant.slot(array, i)?
        })
    };
    let at = probe(n, hash, |i| {
        let s = table(i)?;
        if s.same_word(nil) {
            return Ok(None);
        }
        let k = if l.kind.associations() {
            tenant.slot(s, 0)?
        } else {
            s
        };
        Ok(Some(cls.same_key(tenant, l.kind, k, key)?))
    })?;
    let Some(at) = at else { return Ok(None) };
    let s = table(at)?;
    if s.same_word(nil) {
        return Ok(None);
    }
    Ok(Some(match l.kind {
        Kind::MethodDictionary => tenant.slot(array, at)?,
        Kind::Dictionary | Kind::IdentityDictionary => tenant.slot(s, 1)?,
        Kind::Set | Kind::IdentitySet => s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_string_hash_matches_the_images_own_method() {
        // Answers of `'...' hash` run by the interpreter in mini.image and Scratch.
        assert_eq!(old_string_hash(b""), 21_845);
        assert_eq!(old_string_hash(b"a"), 10_282);
        assert_eq!(old_string_hash(&[200]), 7_632);
        assert_eq!(old_string_hash(b"ab"), 4_756);
        assert_eq!(old_string_hash(b"abc"), 4_757);
        assert_eq!(old_string_hash(&[0, 0, 0]), 3);
        assert_eq!(old_string_hash(&[200, b'a', b'b']), 9_700);
        assert_eq!(old_string_hash(b"hello world"), 5_111);
        assert_eq!(old_string_hash(b"printString"), 5_497);
    }

    fn elems(hashes: &[(usize, i64)]) -> Vec<Element> {
        hashes
            .iter()
            .map(|&(index, hash)| Element { index, hash })
            .collect()
    }

    #[test]
    fn in_place_is_read_off_the_runs() {
        // Slots 0..3 occupied, slot 3 free; all home at 0: in place.
        let occ = [true, true, true, false];
        assert!(all_in_place(&occ, &elems(&[(0, 0), (1, 4), (2, 8)])));
        // The element at 2 homes at 3: probing from 3 hits the free slot first.
        assert!(!all_in_place(&occ, &elems(&[(0, 0), (1, 4), (2, 3)])));
        // Wrap-around: from home 2 the probe passes 2 and 3 to reach 0; from home 1 (free)
        // it ends at once.
        let occ = [true, false, true, true];
        assert!(all_in_place(&occ, &elems(&[(0, 2), (2, 2), (3, 2)])));
        assert!(!all_in_place(&occ, &elems(&[(0, 1), (2, 2), (3, 2)])));
        // A full table is never in place.
        assert!(!all_in_place(&[true, true], &elems(&[(0, 0), (1, 1)])));
    }

    #[test]
    fn next_free_goes_round_and_stops_on_a_full_table() {
        let mut next = vec![0, 1, 2, 3, 4];
        for (home, want) in [(2, 2), (2, 3), (2, 0), (2, 1)] {
            let at = next_free(&mut next, home).unwrap();
            assert_eq!(at, want);
            occupy(&mut next, at);
        }
        for home in 0..4 {
            assert_eq!(next_free(&mut next, home), None);
        }
        assert_eq!(next_free(&mut [], 0), None);
    }
}
