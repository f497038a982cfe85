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
//!   `Dictionary`) by `hash`, which only SmallIntegers have computably here (their value).
//!
//! What is not rehashed is reported, never guessed: equality collections holding anything
//! but SmallIntegers (`hash` of a String or Symbol differs between Squeak versions, and of
//! other objects it is whatever their class defines); identity collections holding
//! immediates (whose identity hash is the VM's business); tables over 4,096 slots of an
//! identity collection (later Squeaks scale the identity hash for those, earlier ones do
//! not); collections whose layout is not the expected one; collections holding a key
//! twice (after an import, typically nil for several out-pointers that did not bind: no
//! placement makes such a table answer for both). A collection whose every element is
//! already found from its hash is left alone.
//!
//! Time: O(objects given + the superclass chains of their classes, once per class +
//! the slots of the hashed collections among them).

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

/// Finds hashed collections by their class's superclass chain in one base.
struct Classifier<'a> {
    heap: &'a BaseHeap,
    names: &'a BaseNames,
    cache: HashMap<Word, Option<(Layout, String)>>,
}

impl Classifier<'_> {
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

/// The hash an element is placed by, if it can be computed here.
fn hash_of(t: &Tenant, kind: Kind, key: Value) -> Result<Option<i64>, String> {
    if let Some(i) = key.as_int() {
        return if kind.by_identity() {
            Err("an identity collection holding SmallIntegers".into())
        } else {
            Ok(Some(i))
        };
    }
    if !key.word().is_ref() {
        return Err("an immediate other than a SmallInteger".into());
    }
    if kind.by_identity() {
        return t
            .identity_hash(key)
            .map(|h| Some(i64::from(h)))
            .map_err(|e| e.to_string());
    }
    Err("an equality collection of objects whose hash is not computed here".into())
}

/// Where linear probing from `hash` in a table of `n` slots first finds `key` or an empty
/// slot (0-based), as Squeak's `scanFor:`; `None` if the table is full without it.
fn probe(
    n: usize,
    hash: i64,
    mut at: impl FnMut(usize) -> Result<Option<bool>>,
) -> Result<Option<usize>> {
    if n == 0 {
        return Ok(None);
    }
    let start = usize::try_from(hash.rem_euclid(n as i64)).unwrap_or(0);
    for i in (start..n).chain(0..start) {
        // Some(true): the key; Some(false): another; None: empty.
        match at(i)? {
            Some(true) | None => return Ok(Some(i)),
            Some(false) => {}
        }
    }
    Ok(None)
}

/// One element of a table: the key hashed, and what moves with it.
struct Element {
    index: usize,
    hash: i64,
}

/// The occupied slots of a collection's table.
fn elements(
    t: &Tenant,
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
        match hash_of(t, l.kind, key) {
            Ok(Some(hash)) => out.push(Element { index: i, hash }),
            Ok(None) => {}
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok((n, out)))
}

/// Rehashes the hashed collections among `objects` in `tenant` (see the module doc), with
/// `names` the names of the tenant's base.
///
/// # Errors
/// [`crate::SegmentError::Tenant`] if the tenant refuses a read or write (a quota).
pub fn rehash(tenant: &mut Tenant, names: &BaseNames, objects: &[Value]) -> Result<RehashReport> {
    let base = tenant.base().clone();
    let heap = base.heap();
    let nil = heap.nil();
    let mut cls = Classifier {
        heap,
        names,
        cache: HashMap::new(),
    };
    let mut report = RehashReport::default();
    for (pos, &v) in objects.iter().enumerate() {
        if !v.word().is_ref() || !matches!(tenant.format(v)?, Format::Pointers) {
            continue;
        }
        let Some((layout, class)) = cls.classify(tenant, v)? else {
            continue;
        };
        report.collections += 1;
        let (n, elems) = match elements(tenant, v, layout, nil)? {
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
        let array = tenant.slot(v, layout.array)?;
        let table = |t: &Tenant, i: usize| -> Result<Value> {
            Ok(if layout.kind == Kind::MethodDictionary {
                t.slot(v, layout.named + i)?
            } else {
                t.slot(array, i)?
            })
        };
        let mut ok = true;
        for e in &elems {
            let found = probe(n, e.hash, |i| {
                let s = table(tenant, i)?;
                if s.same_word(nil) {
                    return Ok(None);
                }
                Ok(Some(i == e.index))
            })?;
            if found != Some(e.index) {
                ok = false;
                break;
            }
        }
        if ok {
            report.in_place += 1;
            continue;
        }
        // Take every element out, then put each back at the first empty slot of its probe.
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
        let mut moved = 0;
        for (hash, key_slot, value, old) in taken {
            let tbl = |t: &Tenant, i: usize| table(t, i);
            let at = probe(n, hash, |i| {
                Ok((!tbl(tenant, i)?.same_word(nil)).then_some(false))
            })?;
            let Some(at) = at else {
                // n slots held these elements a moment ago: one is always free.
                return Err(crate::SegmentError::BadSegment(
                    "a hashed collection that overflows",
                ));
            };
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
/// MethodDictionary, the element for a set; `None` if absent. For tests and tools that
/// check a collection answers its lookups.
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
    let mut cls = Classifier {
        heap,
        names,
        cache: HashMap::new(),
    };
    let bad = crate::SegmentError::BadSegment;
    let (l, _) = cls
        .classify(tenant, collection)?
        .ok_or(bad("not a hashed collection"))?;
    let hash = hash_of(tenant, l.kind, key)
        .ok()
        .flatten()
        .ok_or(bad("a key whose hash is not computed here"))?;
    let array = tenant.slot(collection, l.array)?;
    let n = tenant.size(array)?.slots;
    let table = |i: usize| -> Result<Value> {
        Ok(if l.kind == Kind::MethodDictionary {
            tenant.slot(collection, l.named + i)?
        } else {
            tenant.slot(array, i)?
        })
    };
    let same = |a: Value, b: Value| -> Result<bool> { Ok(tenant.identical(a, b)?) };
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
        Ok(Some(same(k, key)?))
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
