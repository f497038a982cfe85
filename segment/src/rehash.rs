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
//! - identity collections (`IdentitySet`, `IdentityDictionary`) hash by `identityHash` as
//!   the target image defines it (what their `scanFor:` sends in every image read: the
//!   identity hash, primitive 75, in the V3 images; `basicIdentityHash bitShift: 18` in the
//!   headless Spur kernel), run as `hash` is ([`Hasher::identity_hash`]; a key with no
//!   `identityHash` method up its class chain, or a base whose methods are not read, by
//!   the raw identity hash); a
//!   `MethodDictionary` by the raw identity hash ([`Tenant::identity_hash`]), as the
//!   virtual machine probes it; equality collections (`Set`,
//!   `Dictionary`) by `hash` as the target image defines it ([`crate::image_hash`]): the
//!   method is looked up the element's class chain in the image's method dictionaries and
//!   run when it is within the modelled subset (`Object>>hash`, `^self identityHash`, so
//!   objects whose class does not override it hash by identity; SmallIntegers, Symbols
//!   (primitive 75), the old `String>>hash` ([`old_string_hash`]), Characters and Colors
//!   (quick returns), LargeIntegers, Floats, Fractions, Points, Rectangles, Associations
//!   (`^key hash`), and whatever else is straight-line integer code over those), from V3
//!   and Spur methods alike.
//!
//! What is not rehashed is reported with a typed [`Reason`], never guessed: equality
//! collections holding an element whose `hash` is not computed ([`Reason::Hash`], with
//! the [`crate::image_hash::Unhashed`] saying which method and why: loops, other
//! primitives, bit logic on negative LargeIntegers, Sista methods); identity collections
//! holding immediates (whose identity hash is the VM's business); tables over 4,096 slots
//! of an identity collection (later Squeaks scale the identity hash for those, earlier ones
//! do not); collections whose layout is not the expected one, or whose Associations'
//! `key` is not their first field; collections of a class that defines its own `scanFor:`
//! below its kind's class (`PluggableSet`, `PluggableDictionary`: [`Reason::OwnScanFor`];
//! one whose `scanFor:` has the kind's literal frame, `LiteralDictionary`'s, probes from the
//! same hash and is rehashed); collections holding a key twice (after an import, typically
//! nil for several out-pointers that did not bind: no placement makes such a table answer
//! for both). A collection whose every element is already found from its hash is left
//! alone.
//!
//! **The rest, by the image's code.** Squeak itself sends `rehash` to every hashed
//! collection of a segment it loads. [`RehashReport::left_for_image`] lists the collections
//! reported for a reason the image's own `rehash` answers ([`Reason::left_for_image`]: every
//! reason but [`Reason::KeyTwice`], whose table the image's `rehash` would collapse to one
//! element per key), for the interpreter (`cowheap_vm`'s `Vm::rehash_by_image`) to send
//! `rehash` to, each with its own bytecode budget and typed outcome. This crate does not
//! depend on the interpreter.
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

use crate::bind::{BaseNames, Objects};
use crate::error::Result;
pub use crate::image_hash::old_string_hash;
use crate::image_hash::{Hasher, Unhashed};
use cowheap_forwarders::Base;
use cowheap_heap::{Format, ObjectIndex, Value, Word};
use cowheap_tenants::Tenant;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Longest superclass chain followed.
const MAX_CHAIN: usize = 1_000;
/// Identity tables larger than this hash differently in different Squeak versions.
const SCALED_ABOVE: usize = 4_096;
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

/// Why a hashed collection was not rehashed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Its `array` field is nil or not an object.
    NoArray,
    /// A MethodDictionary whose keys and values differ in number.
    KeysAndValuesDiffer,
    /// An identity table over 4,096 slots (later Squeaks scale the identity hash there).
    ScaledIdentityTable {
        /// Its slots.
        slots: usize,
    },
    /// A dictionary element that is not an Association (or whose `key` is not its first
    /// field).
    NotAnAssociation,
    /// The same key twice (after an import, typically several unbound out-pointers read
    /// as nil): no placement answers for both.
    KeyTwice {
        /// Whether the key is nil.
        nil: bool,
    },
    /// An identity collection holding SmallIntegers or other immediates, whose identity
    /// hash is the virtual machine's business.
    ImmediateInIdentityCollection,
    /// A class of the chain defines its own `scanFor:`, probing otherwise than the kind's.
    OwnScanFor {
        /// The class.
        class: String,
    },
    /// An element's `hash` is not computed here ([`Unhashed`] says why).
    Hash(Unhashed),
    /// Its `array` is not among the objects given to [`rehash_members`] (the members of
    /// the segment imported), which writes only those, and its elements are not where
    /// their hashes lead (a table outside that needs no change counts as in place).
    ArrayOutside,
}

impl Reason {
    /// Whether the image's own `rehash` (sent by the interpreter, `cowheap_vm`'s
    /// `Vm::rehash_by_image`) is the way to finish a collection reported for this reason:
    /// every reason but [`Reason::KeyTwice`]. The image's `hash` and `scanFor:` are what
    /// the model could not run, and the image runs them; a table holding one key twice
    /// (after an import, unbound out-pointers read as nil) has no placement that answers
    /// for both, and Squeak's `rehash` (`noCheckAdd:` of each element into a new table)
    /// would put the second where the first is found and lose the first. A collection
    /// whose table lies outside the objects an import wrote ([`Reason::ArrayOutside`]) is
    /// left for the image too: Squeak's `rehash` fills a new array and leaves the outside
    /// one as it is.
    pub fn left_for_image(&self) -> bool {
        !matches!(self, Reason::KeyTwice { .. })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoArray => write!(f, "no array"),
            Reason::KeysAndValuesDiffer => write!(f, "keys and values of different sizes"),
            Reason::ScaledIdentityTable { slots } => write!(
                f,
                "a table of {slots} slots (identity hashes are scaled over {SCALED_ABOVE} in later Squeaks)"
            ),
            Reason::NotAnAssociation => write!(f, "an element that is not an Association"),
            Reason::KeyTwice { nil } => write!(
                f,
                "a key held twice ({}; an out-pointer that did not bind reads nil)",
                if *nil { "nil" } else { "an object" }
            ),
            Reason::ImmediateInIdentityCollection => {
                write!(
                    f,
                    "an identity collection holding SmallIntegers or other immediates"
                )
            }
            Reason::OwnScanFor { class } => {
                write!(f, "{class} probes by a scanFor: of its own")
            }
            Reason::Hash(u) => write!(f, "an element's hash: {u}"),
            Reason::ArrayOutside => write!(f, "an array outside the objects rehashed"),
        }
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
    pub why: Reason,
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

impl RehashReport {
    /// The collections not rehashed that the image's own `rehash` should be sent to
    /// ([`Reason::left_for_image`]): their positions in the objects given to [`rehash`],
    /// in order. Time: O(collections not rehashed).
    pub fn left_for_image(&self) -> Vec<usize> {
        self.not_rehashed
            .iter()
            .filter(|n| n.why.left_for_image())
            .map(|n| n.object)
            .collect()
    }
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
        let mut why: BTreeMap<(&str, String), usize> = BTreeMap::new();
        for n in &self.not_rehashed {
            *why.entry((&n.class, n.why.to_string())).or_default() += 1;
        }
        for ((class, why), n) in why {
            writeln!(f, "  not rehashed: {n} {class}: {why}")?;
        }
        Ok(())
    }
}

/// The layout of a hashed collection.
#[derive(Clone, Debug)]
struct Layout {
    kind: Kind,
    /// Slot of `array`.
    array: usize,
    /// Named slots of the object's class (where a MethodDictionary's keys start).
    named: usize,
    /// A class between the object's class and its kind's class that defines its own
    /// `scanFor:` probing otherwise than the kind's (`PluggableSet`, `PluggableDictionary`).
    own_scan: Option<String>,
}

/// Finds hashed collections by their class's superclass chain in one base, and computes
/// their elements' hashes as the base's methods do ([`Hasher`]).
struct Classifier<'a> {
    /// The tenant's version of its base, whose classes' names and instance variables
    /// are read (those its commits changed or added included).
    version: &'a Base,
    names: &'a BaseNames,
    cache: HashMap<Word, Option<(Layout, String)>>,
    hasher: Hasher<'a>,
    /// Whether an element class's `key` is the plain quick return of its first field.
    plain_key: HashMap<Word, bool>,
    /// The tenant's copies of base objects by their private words, with the base objects
    /// they stand for: made at the first class met that is a private object.
    copies: Option<HashMap<Word, ObjectIndex>>,
}

impl<'a> Classifier<'a> {
    fn new(version: &'a Base, names: &'a BaseNames) -> Classifier<'a> {
        Classifier {
            version,
            names,
            cache: HashMap::new(),
            hasher: Hasher::new(version, names),
            plain_key: HashMap::new(),
            copies: None,
        }
    }

    /// The base object class `c` is in the tenant: itself, or for a private object the base
    /// object it is the copy of (a class the tenant wrote: a method compiled into it, a
    /// class variable set), so that its name and instance variables are the base's. `None`
    /// for a class of the tenant's own. Time: O(1), or O(diverted objects) once per
    /// classifier, at the first private class.
    fn base_index(&mut self, t: &Tenant, c: Value) -> Option<ObjectIndex> {
        if let Some(x) = c.word().as_base() {
            return Some(x);
        }
        if !c.word().is_private() {
            return None;
        }
        let copies = self.copies.get_or_insert_with(|| {
            // A copy's own base object first: `collect` keeps the last of equal keys.
            t.copies()
                .chain(t.own_copies())
                .filter_map(|(b, now)| Some((now.word(), b.word().as_base()?)))
                .collect()
        });
        copies.get(&c.word()).copied()
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

    /// Whether an Association-like element's `key` (what `Dictionary>>scanFor:` sends) is
    /// its first field: the element's class answers `key` by a quick return of field 0
    /// (`LookupKey>>key`), as the table layout assumes.
    fn key_is_first_field(&mut self, t: &Tenant, element: Value) -> Result<bool> {
        let class = t.class_of(element)?;
        if let Some(&k) = self.plain_key.get(&class.word()) {
            return Ok(k);
        }
        let plain = match self.names.symbol("key") {
            Some(sel) => match self.hasher.lookup(t, class, sel)? {
                Some((m, _)) => self.hasher.primitive(t, m)? == Some(264),
                None => false,
            },
            None => false,
        };
        self.plain_key.insert(class.word(), plain);
        Ok(plain)
    }

    /// The hash an element is placed by, or why it is not computed here.
    fn hash_of(&mut self, t: &Tenant, kind: Kind, key: Value) -> Result<Result<i64, Reason>> {
        if kind.by_identity() && !key.word().is_ref() {
            return Ok(Err(Reason::ImmediateInIdentityCollection));
        }
        Ok(match kind {
            // The virtual machine probes a method dictionary by the raw identity hash.
            Kind::MethodDictionary => Ok(i64::from(t.identity_hash(key)?)),
            // `IdentitySet>>scanFor:` and `IdentityDictionary>>scanFor:` send
            // `identityHash`, which a Spur kernel may define otherwise than the raw hash
            // (`basicIdentityHash bitShift: 18` in the headless image). A key that has no
            // such method (its class chain cut short by a superclass that did not bind), or
            // a base whose methods are not read, is placed by the raw identity hash, which
            // every image's `identityHash` starts from: the image cannot hash such a key
            // itself, and its placement changes no other key's lookup.
            Kind::IdentitySet | Kind::IdentityDictionary => {
                match self.hasher.identity_hash(t, key)? {
                    Err(Unhashed::NoMethod { .. } | Unhashed::MethodFormat) => {
                        Ok(i64::from(t.identity_hash(key)?))
                    }
                    other => other.map_err(Reason::Hash),
                }
            }
            Kind::Set | Kind::Dictionary => self.hasher.hash(t, key)?.map_err(Reason::Hash),
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
            if !self.hasher.is_old_string(t, v)? {
                return Ok(false);
            }
        }
        Ok(t.bytes(a)? == t.bytes(b)?)
    }

    fn chain(&mut self, t: &Tenant, class: Value) -> Result<Option<(Layout, String)>> {
        let nil = self.version.heap().nil();
        let class_base = self.base_index(t, class);
        let own_named = class_base
            .and_then(|x| self.names.all_inst_var_names(self.version, x))
            .map(|v| v.len());
        let scan_for = self.names.symbol("scanFor:");
        // The nearest class below the kind's class with a `scanFor:` of its own.
        let mut own_scan: Option<(Value, Value)> = None;
        let mut c = class;
        for _ in 0..MAX_CHAIN {
            if c.same_word(nil) || !c.word().is_ref() {
                return Ok(None);
            }
            if let Some(x) = self.base_index(t, c)
                && let Some(name) = self.version.name_of_class(x)
                && let Some(kind) = Kind::of_name(&name)
            {
                let ivars = self.names.all_inst_var_names(self.version, x);
                // Every Squeak's HashedCollection: `tally array`.
                let array = ivars
                    .as_ref()
                    .map_or(Some(1), |v| v.iter().position(|n| n == "array"));
                let Some(array) = array else {
                    return Ok(None);
                };
                let named = own_named.or(ivars.map(|v| v.len())).unwrap_or(2);
                let shown = class_base
                    .and_then(|x| self.version.name_of_class(x))
                    .unwrap_or(name);
                let own_scan = match (own_scan, scan_for) {
                    (Some((below, method)), Some(sel)) => {
                        let kinds = self.hasher.lookup(t, c, sel)?.map(|(m, _)| m);
                        let same = match kinds {
                            Some(k) => same_literals(t, method, k)?,
                            None => false,
                        };
                        let below = self.base_index(t, below);
                        (!same).then(|| {
                            below
                                .and_then(|x| self.version.name_of_class(x))
                                .unwrap_or_else(|| "a class of the tenant".into())
                        })
                    }
                    _ => None,
                };
                return Ok(Some((
                    Layout {
                        kind,
                        array,
                        named,
                        own_scan,
                    },
                    shown,
                )));
            }
            if own_scan.is_none()
                && let Some(sel) = scan_for
                && let Some((m, holder)) = self.hasher.lookup(t, c, sel)?
                && holder.same_word(c)
            {
                own_scan = Some((c, m));
            }
            // A class the chain cannot climb (no pointer object with a superclass field, as
            // in a hostile or synthetic heap) is no hashed collection's.
            if t.format(c)? != Format::Pointers || t.size(c)?.slots == 0 {
                return Ok(None);
            }
            c = t.slot(c, 0)?;
        }
        Ok(None)
    }
}

/// Whether `m` is a compiled method with a SmallInteger header.
fn is_method(t: &Tenant, m: Value) -> Result<bool> {
    Ok(m.word().is_ref()
        && t.format(m)? == Format::CompiledMethod
        && t.slot(m, 0)?.as_int().is_some())
}

/// Whether two methods have the same header and literal frame (a last literal that is an
/// Association in both, a class binding, which differs between a method and its copy in a
/// subclass, excepted): then a subclass's `scanFor:` probes from the same hash as its
/// ancestor's (`LiteralDictionary`'s, `#hash #key`, is `Dictionary`'s with another
/// equality).
fn same_literals(t: &Tenant, a: Value, b: Value) -> Result<bool> {
    if !is_method(t, a)? || !is_method(t, b)? {
        return Ok(false);
    }
    let (na, nb) = (t.size(a)?.slots, t.size(b)?.slots);
    if na != nb || t.slot(a, 0)?.word() != t.slot(b, 0)?.word() {
        return Ok(false);
    }
    let is_binding = |v: Value| -> Result<bool> {
        Ok(v.word().is_ref() && t.format(v)? == Format::Pointers && t.size(v)?.slots == 2)
    };
    for i in 1..na {
        let (x, y) = (t.slot(a, i)?, t.slot(b, i)?);
        if t.identical(x, y)? || (i + 1 == na && is_binding(x)? && is_binding(y)?) {
            continue;
        }
        return Ok(false);
    }
    Ok(true)
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
    l: &Layout,
    nil: Value,
) -> Result<Result<(usize, Vec<Element>), Reason>> {
    if let Some(class) = &l.own_scan {
        return Ok(Err(Reason::OwnScanFor {
            class: class.clone(),
        }));
    }
    let array = t.slot(v, l.array)?;
    if !array.word().is_ref() || array.same_word(nil) {
        return Ok(Err(Reason::NoArray));
    }
    let n = t.size(array)?.slots;
    let keys_in_self = l.kind == Kind::MethodDictionary;
    if keys_in_self && t.size(v)?.slots != l.named + n {
        return Ok(Err(Reason::KeysAndValuesDiffer));
    }
    if l.kind.by_identity() && n > SCALED_ABOVE {
        return Ok(Err(Reason::ScaledIdentityTable { slots: n }));
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
            if !slot.word().is_ref()
                || t.format(slot)? != Format::Pointers
                || t.size(slot)?.slots < 1
                || !cls.key_is_first_field(t, slot)?
            {
                return Ok(Err(Reason::NotAnAssociation));
            }
            t.slot(slot, 0)?
        } else {
            slot
        };
        if !keys.insert(key.word().bits()) {
            return Ok(Err(Reason::KeyTwice {
                nil: key.same_word(nil),
            }));
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
/// A collection's table is written where it is, whatever holds it (its `array` need not
/// be among `objects`); [`rehash_members`] writes only the objects it is given. A class
/// whose chain cannot be climbed (an object with no superclass field) makes no hashed
/// collection.
///
/// # Errors
/// [`crate::SegmentError::HashedCollection`] for a table with no free slot (objects before
/// it may have been rehashed already); [`crate::SegmentError::Tenant`] if the tenant
/// refuses a read or write (a quota: the first write of a base table copies it). The
/// collection refused is left as it was: its objects are made writable before any element
/// is taken out.
pub fn rehash(tenant: &mut Tenant, names: &BaseNames, objects: &[Value]) -> Result<RehashReport> {
    rehash_within(tenant, names, objects, None)
}

/// [`rehash`], writing only `objects`: a collection whose `array` is not among them is
/// reported ([`Reason::ArrayOutside`]) and left as it is. What an import rehashes (its
/// members), so that it never rewrites an object outside the segment.
///
/// # Errors
/// As [`rehash`].
pub fn rehash_members(
    tenant: &mut Tenant,
    names: &BaseNames,
    objects: &[Value],
) -> Result<RehashReport> {
    // The same word: a collection's array is reached through the collection, by the word
    // the member was made with.
    let members: HashSet<Word> = objects.iter().map(|v| v.word()).collect();
    rehash_within(tenant, names, objects, Some(&members))
}

/// [`rehash`] of `objects`, writing tables only among `writable` where given.
fn rehash_within(
    tenant: &mut Tenant,
    names: &BaseNames,
    objects: &[Value],
    writable: Option<&HashSet<Word>>,
) -> Result<RehashReport> {
    let base = tenant.base().clone();
    let nil = base.heap().nil();
    let mut cls = Classifier::new(&base, names);
    let mut report = RehashReport::default();
    for (pos, &v) in objects.iter().enumerate() {
        if !v.word().is_ref() || !matches!(tenant.format(v)?, Format::Pointers) {
            continue;
        }
        let Some((layout, class)) = cls.classify(tenant, v)? else {
            continue;
        };
        report.collections += 1;
        let (n, elems) = match elements(tenant, &mut cls, v, &layout, nil)? {
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
        // Is every element found from its hash?
        let mut occupied = vec![false; n];
        for e in &elems {
            occupied[e.index] = true;
        }
        let array = tenant.slot(v, layout.array)?;
        // A table this rehash may not write: in place, or left as it is and reported
        // (never refused, however full: it is not this rehash's to fix).
        if writable.is_some_and(|w| !w.contains(&array.word())) {
            if all_in_place(&occupied, &elems) {
                report.in_place += 1;
            } else {
                report.not_rehashed.push(NotRehashed {
                    object: pos,
                    class,
                    why: Reason::ArrayOutside,
                });
            }
            continue;
        }
        if n > 0 && elems.len() >= n {
            return Err(crate::SegmentError::HashedCollection {
                object: pos,
                class,
                problem: TableProblem::NoFreeSlot { slots: n },
            });
        }
        if all_in_place(&occupied, &elems) {
            report.in_place += 1;
            continue;
        }
        let table = |t: &Tenant, i: usize| -> Result<Value> {
            Ok(if layout.kind == Kind::MethodDictionary {
                t.slot(v, layout.named + i)?
            } else {
                t.slot(array, i)?
            })
        };
        // Every object the moves below write is made writable first, by writing one slot
        // back as it is: the first write of a base object copies it, and a copy the
        // tenant refuses (its quota) refuses the rehash here, with nothing taken out.
        // Afterwards no write can fail, so no element is lost half-way.
        if let Some(e) = elems.first() {
            if layout.kind == Kind::MethodDictionary {
                let key = tenant.slot(v, layout.named + e.index)?;
                tenant.set_slot(v, layout.named + e.index, key)?;
            }
            let value = tenant.slot(array, e.index)?;
            tenant.set_slot(array, e.index, value)?;
        }
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
    let base = tenant.base();
    let nil = base.heap().nil();
    let mut cls = Classifier::new(base, names);
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
