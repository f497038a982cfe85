//! Segments of a tenant: extraction, the states of Squeak's ImageSegment, and import.
//!
//! [`extract`] takes the tenant's *private* objects reachable from `roots` that are not
//! reachable from the tenant's other roots without passing through a segment root
//! (Squeak's definition: mark from everything else, what lies in the roots' shadow is the
//! segment). The other roots are the ones given and the private copies of diverted base
//! objects, which the base reaches. Base objects are never members: every reference to one is an out-pointer, as is
//! every reference to a private object outside the segment. The walk reads only private
//! objects, so it costs O(private objects walked), never a walk of the base.
//!
//! ```text
//!             extract                 file::write             import_into
//!  (tenant) ----------> ActiveCopy ----------------> OnFile ----------------> Imported
//!                           |                         ^   |                       ^
//!   swap_out: bytes in the  |     collect: members    |   | read, verified        |  import +
//!   store, then roots       |     freed, the store    |   v                       |  fill_stub
//!   stubbed                 +------> Active ----------+  Inactive ----------------+  (fault in)
//! ```
//!
//! | state | invariant |
//! | --- | --- |
//! | [`SegmentState::ActiveCopy`] | the objects are copied into the segment and still live in the tenant ([`TenantSegment::members`] names them) |
//! | [`SegmentState::Active`] | the segment's bytes are in a store and its roots are root stubs: the segment alone holds its objects (still in the tenant until the next collection) |
//! | [`SegmentState::OnFile`] | the segment is written to a file or a store and its words may be dropped from memory (after a swap-out: its members are collected, only the stubs remain) |
//! | [`SegmentState::Inactive`] | read back from a file or store, verified, not yet materialised |
//! | [`SegmentState::Imported`] | materialised in a tenant (the same base, or through portable out-pointers another); after a fault-in, the stubs are the roots again |
//!
//! Swapping out and faulting in ([`crate::swap`]) go ActiveCopy -> Active -> OnFile ->
//! Inactive -> Imported: the bytes are stored before any root is stubbed, so a swap-out
//! that fails leaves the tenant as it was, and a fault-in verifies the bytes before it
//! allocates anything. A root stub is never a member: the walks of [`extract`] do not enter
//! one, and a reference to a stub is an out-pointer to an object outside the segment.

use crate::bind::{BaseNames, Objects};
use crate::error::{Result, SegmentError};
use crate::hosts::{Placeholder, Saving, SegHost};
use crate::rehash::RehashReport;
use cowheap_heap::{Fingerprint, Format, ObjectIndex, ObjectSize, Value, Word};
use cowheap_tenants::Tenant;
use cowheap_tenants::hosts::{DetachedHost, HostPlugins};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::VecDeque;
use std::fmt;

/// The states of a segment (see the module doc's diagram).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SegmentState {
    /// Extracted; its objects are still live in the tenant.
    ActiveCopy,
    /// Roots replaced by stubs; the segment is the only holder of its objects.
    Active,
    /// Written to a file.
    OnFile,
    /// Read back from a file.
    Inactive,
    /// Materialised in a tenant.
    Imported,
}

/// A transition the state machine does not have.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("a segment cannot go from {from:?} to {to:?}")]
pub struct StateError {
    /// The state it was in.
    pub from: SegmentState,
    /// The state asked for.
    pub to: SegmentState,
}

impl SegmentState {
    /// Whether the machine has the transition `self -> to` (the module doc's diagram).
    pub fn allows(self, to: SegmentState) -> bool {
        use SegmentState::*;
        matches!(
            (self, to),
            (ActiveCopy, OnFile)
                | (ActiveCopy, Active)
                | (Active, OnFile)
                | (OnFile, Inactive)
                | (Inactive, Imported)
                | (OnFile, Imported)
                | (ActiveCopy, Imported)
        )
    }

    /// Moves to `to`.
    ///
    /// # Errors
    /// [`StateError`] if the machine has no such transition; the state is unchanged.
    pub fn advance(&mut self, to: SegmentState) -> Result<(), StateError> {
        if self.allows(to) {
            *self = to;
            Ok(())
        } else {
            Err(StateError { from: *self, to })
        }
    }
}

/// A reference inside a segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SRef {
    /// An immediate (small integer, character, small float), as its word.
    Imm(Word),
    /// A member, by number.
    Obj(u32),
    /// An out-pointer, by number (0-based).
    Out(u32),
}

/// One member of a segment.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SegObj {
    /// Its class.
    pub class: SRef,
    /// Its format.
    pub format: Format,
    /// Its identity hash in the tenant it came from.
    pub hash: u32,
    /// Its pointer slots.
    pub slots: Vec<SRef>,
    /// Its raw bytes.
    pub bytes: Vec<u8>,
}

/// Where an out-pointer leads.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OutRef {
    /// A base object of the segment's own base, by index.
    Base(ObjectIndex),
    /// A private object of the tenant outside the segment: element `k` of the values the
    /// extraction answered in [`TenantSegment::outside`] (meaningful in that tenant only).
    Outside(u32),
    /// Portable: a well-known object, by its index in the special objects array.
    Special(u32),
    /// Portable: a Symbol, by its bytes' text ([`crate::bind::byte_text`]: a character
    /// per byte, so that it names the Symbol of exactly those bytes).
    Symbol(String),
    /// Portable: a class, by name and instance variable names (inherited first): binds only
    /// to a class of that name and that shape.
    Class {
        /// The name.
        name: String,
        /// The instance variable names.
        inst_vars: Vec<String>,
    },
    /// Portable: the value of a global, by name.
    Global(String),
    /// Portable: a Character, by its value: the image's Character of that value, as its
    /// `Character value:` answers it (a V3 image's CharacterTable's, a Spur image's
    /// immediate), which is what a Character of a V3 image names (an object of its
    /// CharacterTable, otherwise bound to its base alone).
    Character(u32),
    /// Portable only to a base with this fingerprint, or a version committed over it (whose
    /// objects are at the same indices): an object by index.
    Pinned {
        /// The base's fingerprint.
        fingerprint: Fingerprint,
        /// The object's index.
        index: ObjectIndex,
    },
}

impl fmt::Display for OutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutRef::Base(x) => write!(f, "base object {}", x.get()),
            OutRef::Outside(k) => write!(f, "tenant object outside the segment ({k})"),
            OutRef::Special(k) => write!(f, "special object {k}"),
            OutRef::Symbol(s) => write!(f, "#{s}"),
            OutRef::Class { name, .. } => write!(f, "class {name}"),
            OutRef::Global(g) => write!(f, "global {g}"),
            OutRef::Character(n) => write!(f, "Character value: {n}"),
            OutRef::Pinned { fingerprint, index } => {
                write!(f, "object {} of base {fingerprint}", index.get())
            }
        }
    }
}

/// A segment of a tenant.
#[derive(Clone, Debug)]
pub struct TenantSegment {
    /// Its state.
    pub state: SegmentState,
    /// The fingerprint of the base its `Base` out-pointers index.
    pub fingerprint: Fingerprint,
    /// Its members; member 0.. `roots.len()` need not be the roots.
    pub objects: Vec<SegObj>,
    /// The members that are roots, in the order given.
    pub roots: Vec<u32>,
    /// The out-pointer table.
    pub out: Vec<OutRef>,
    /// While `ActiveCopy`: the tenant objects the members were copied from.
    pub members: Vec<Value>,
    /// The tenant's private objects outside the segment that `OutRef::Outside` names.
    pub outside: Vec<Value>,
    /// The members that are host objects' proxies, with their kinds and saved states, by
    /// increasing member number ([`crate::hosts`]).
    pub hosts: Vec<SegHost>,
}

impl TenantSegment {
    /// A segment read from bytes (a file, a Squeak segment): inactive, with no tenant
    /// objects behind it yet.
    pub(crate) fn read(
        fingerprint: Fingerprint,
        objects: Vec<SegObj>,
        roots: Vec<u32>,
        out: Vec<OutRef>,
        hosts: Vec<SegHost>,
    ) -> TenantSegment {
        TenantSegment {
            state: SegmentState::Inactive,
            fingerprint,
            objects,
            roots,
            out,
            members: Vec::new(),
            outside: Vec::new(),
            hosts,
        }
    }
}

/// The private objects reachable from `from` (following slots and classes, through private
/// objects only), not entering `stop`. A stub (a member of a segment swapped out,
/// [`crate::swap`]) is seen but not entered and not answered: its body is in its segment,
/// and it is never a member of another segment (a reference to it is an out-pointer).
/// Checks what a segment's members refer to, before anything is made of them: every class a
/// member or an out-pointer (not an immediate), the member classes without a cycle, every slot
/// and root naming a member or an out-pointer that exists. Answers the members in an order
/// that puts each member class before its instances. Time: O(members + slots).
///
/// # Errors
/// [`SegmentError::BadSegment`] naming the first problem.
pub(crate) fn check_members(objects: &[SegObj], n_out: usize, roots: &[u32]) -> Result<Vec<usize>> {
    let bad = SegmentError::BadSegment;
    let n = objects.len();
    let fits = |r: &SRef| match *r {
        SRef::Imm(_) => true,
        SRef::Obj(j) => (j as usize) < n,
        SRef::Out(k) => (k as usize) < n_out,
    };
    for o in objects {
        match o.class {
            SRef::Imm(_) => return Err(bad("an immediate as a class")),
            SRef::Obj(j) if j as usize >= n => return Err(bad("a class reference to no member")),
            SRef::Out(k) if k as usize >= n_out => {
                return Err(bad("a class reference to no out-pointer"));
            }
            _ => {}
        }
        if !o.slots.iter().all(fits) {
            return Err(bad("a reference to no member or out-pointer"));
        }
    }
    if roots.iter().any(|&r| r as usize >= n) {
        return Err(bad("a root that is no member"));
    }
    let order = crate::class_first_order(n, |i| match objects[i].class {
        SRef::Obj(j) => Some(j as usize),
        _ => None,
    });
    let mut placed = vec![false; n];
    for &i in &order {
        if let SRef::Obj(j) = objects[i].class
            && !placed[j as usize]
        {
            return Err(bad("members whose classes form a cycle"));
        }
        placed[i] = true;
    }
    Ok(order)
}

/// `v` as the object it names now if it is a private word, which may be a forwarder (after
/// a become, or a fault-in's classes, until the next collection); any other word as it is.
/// Members are kept by word, so each is entered under the one word that names it.
fn settled(t: &Tenant, v: Value) -> cowheap_tenants::Result<Value> {
    if v.word().is_private() {
        t.resolve(v)
    } else {
        Ok(v)
    }
}

fn reach(t: &Tenant, from: &[Value], stop: &HashSet<Word>) -> Result<(Vec<Value>, HashSet<Word>)> {
    let mut seen: HashSet<Word> = HashSet::default();
    let mut order = Vec::new();
    let mut queue: VecDeque<Value> = VecDeque::new();
    for &v in from {
        let v = settled(t, v)?;
        if v.word().is_private() && !stop.contains(&v.word()) && seen.insert(v.word()) {
            queue.push_back(v);
        }
    }
    while let Some(v) = queue.pop_front() {
        // A stub is read through its segment's view, if the tenant has a reader: asked
        // first, so that it is never entered.
        if t.stub_segment(v)?.is_some() {
            continue;
        }
        let n = match t.size(v) {
            Ok(size) => size.slots,
            Err(cowheap_tenants::Error::Swapped { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        order.push(v);
        let class = t.class_of(v)?;
        for w in std::iter::once(Ok(class)).chain((0..n).map(|i| t.slot(v, i))) {
            let w = settled(t, w?)?;
            if w.word().is_private() && !stop.contains(&w.word()) && seen.insert(w.word()) {
                queue.push_back(w);
            }
        }
    }
    Ok((order, seen))
}

/// Extracts the segment of `roots` from `tenant`; `others` are the tenant's other roots
/// (see [`tenant_roots`]). The private copies of the base objects the tenant diverted
/// ([`Tenant::copies`]) count as other roots as well, since the base reaches them: what
/// they reach stays outside, and a reference to a copy is the out-pointer
/// [`OutRef::Base`] of the base object it stands for. A root that is itself a copy is
/// still a root. Pinned objects are among [`tenant_roots`]. Time: O(diverted objects + private objects reachable from them, `others` and `roots`,
/// and their slots); the base is never walked.
///
/// A member that is a host object's proxy is recorded with its kind but not its state (as
/// [`Tenant::snapshot`] does): it imports only as a placeholder. Use
/// [`extract_with_hosts`] to save host objects through their plugins.
///
/// # Errors
/// [`SegmentError::NotPrivate`] if a root is not a private object of the tenant (a base
/// object it copied is: the root is its copy); [`SegmentError::Tenant`] for a reference
/// the tenant refuses.
pub fn extract(tenant: &Tenant, roots: &[Value], others: &[Value]) -> Result<TenantSegment> {
    extract_saving(tenant, roots, others, Saving::KindsOnly)
}

/// [`extract`], each member that is a host object's proxy saved with its kind and the bytes
/// its kind's plugin in `plugins` saves ([`crate::hosts`]; a placeholder an earlier import
/// made keeps its bytes and needs no plugin). Time: as [`extract`], plus the plugins' work.
///
/// # Errors
/// As [`extract`]; [`SegmentError::Host`] with
/// [`HostError::NoPlugin`](cowheap_tenants::hosts::HostError::NoPlugin) naming a kind that
/// has no plugin, or [`HostError::Save`](cowheap_tenants::hosts::HostError::Save) if a plugin
/// fails.
pub fn extract_with_hosts(
    tenant: &Tenant,
    roots: &[Value],
    others: &[Value],
    plugins: &HostPlugins,
) -> Result<TenantSegment> {
    extract_saving(tenant, roots, others, Saving::Plugins(plugins))
}

fn extract_saving(
    tenant: &Tenant,
    roots: &[Value],
    others: &[Value],
    saving: Saving<'_>,
) -> Result<TenantSegment> {
    // Each root as the object it names now: a forwarder's target, and for a base object the
    // tenant copied, its copy (the object the tenant sees by that reference, identical to
    // it); a base object it did not copy stays one, and is refused below.
    let roots = &roots
        .iter()
        .map(|&r| {
            if r.word().as_base().is_some() {
                tenant.resolve(r)
            } else {
                settled(tenant, r)
            }
        })
        .collect::<cowheap_tenants::Result<Vec<_>>>()?;
    for r in roots {
        if !r.word().is_private() {
            return Err(SegmentError::NotPrivate(r.word().bits()));
        }
        // A stub reads through its segment's view, but is no root of another segment.
        if let Some(segment) = tenant.stub_segment(*r)? {
            return Err(cowheap_tenants::Error::Swapped {
                segment,
                object: r.word(),
            }
            .into());
        }
        tenant.size(*r)?;
    }
    let root_words: HashSet<Word> = roots.iter().map(|r| r.word()).collect();
    // The base reaches the private copies of diverted base objects: they are other roots
    // too, and a reference to one names the base object it stands for.
    let mut copy_of: HashMap<Word, ObjectIndex> = HashMap::default();
    let mut marked_from: Vec<Value> = others.to_vec();
    // A copy is named as the base object it is, before any base object a one-way become
    // forwarded to it (which elsewhere is an object of its own); an object only such a
    // forwarder leads to is named as that.
    for (b, now) in tenant.own_copies().chain(tenant.copies()) {
        if now.word().is_private()
            && let Some(x) = b.word().as_base()
            && let std::collections::hash_map::Entry::Vacant(e) = copy_of.entry(now.word())
        {
            e.insert(x);
            marked_from.push(now);
        }
    }
    // Mark from the other roots, not entering the segment's roots.
    let (_, outside_marked) = reach(tenant, &marked_from, &root_words)?;
    // The segment: from the roots, not entering what the others reach.
    let (members, _) = reach(tenant, roots, &outside_marked)?;
    let number: HashMap<Word, u32> = members
        .iter()
        .enumerate()
        .map(|(i, v)| (v.word(), i as u32))
        .collect();
    let mut out: Vec<OutRef> = Vec::new();
    let mut outside: Vec<Value> = Vec::new();
    let mut out_index: HashMap<Word, u32> = HashMap::default();
    let mut sref = |v: Value| -> SRef {
        let w = v.word();
        if !w.is_ref() {
            return SRef::Imm(w);
        }
        if let Some(&i) = number.get(&w) {
            return SRef::Obj(i);
        }
        let k = *out_index.entry(w).or_insert_with(|| {
            out.push(match w.as_base().or_else(|| copy_of.get(&w).copied()) {
                Some(x) => OutRef::Base(x),
                None => {
                    outside.push(v);
                    OutRef::Outside(outside.len() as u32 - 1)
                }
            });
            out.len() as u32 - 1
        });
        SRef::Out(k)
    };
    let mut objects = Vec::with_capacity(members.len());
    let mut hosts = Vec::new();
    for (i, &v) in members.iter().enumerate() {
        if let Some(h) = crate::hosts::save(tenant, v, i as u32, saving)? {
            hosts.push(h);
        }
        let size = tenant.size(v)?;
        let class = sref(settled(tenant, tenant.class_of(v)?)?);
        let slots = (0..size.slots)
            .map(|i| tenant.slot(v, i).map(&mut sref))
            .collect::<cowheap_tenants::Result<Vec<_>>>()?;
        objects.push(SegObj {
            class,
            format: tenant.format(v)?,
            hash: tenant.identity_hash(v)?,
            slots,
            bytes: tenant.bytes(v)?.to_vec(),
        });
    }
    let roots: Vec<u32> = roots.iter().map(|r| number[&r.word()]).collect();
    // What a segment file's reader refuses is refused here, before anything is made of it
    // (member classes that form a cycle, say: a swap-out would stub members no fault could
    // bring back).
    check_members(&objects, out.len(), &roots)?;
    Ok(TenantSegment {
        state: SegmentState::ActiveCopy,
        fingerprint: tenant.base().fingerprint(),
        roots,
        objects,
        out,
        members,
        outside,
        hosts,
    })
}

/// Every named root of `tenant` and every object a pinned handle holds (the usual `others`
/// of [`extract`], which adds the diverted copies itself).
pub fn tenant_roots(tenant: &Tenant) -> Vec<Value> {
    tenant
        .root_names()
        .filter_map(|n| tenant.root(n))
        .chain(tenant.pinned_objects())
        .collect()
}

impl TenantSegment {
    /// Rewrites every `Base` out-pointer portably, naming its target in `heap` (the base the
    /// segment was extracted from): a special object by its index in the special objects
    /// array, a Symbol by its string, a class by name and instance variable names, a global's
    /// value by the global's name, a Character of a V3 image's CharacterTable by its value,
    /// anything else by the base's fingerprint and its index.
    /// `Outside` out-pointers stay as they are. `heap` is the base heap, or the version of
    /// the base the segment was extracted on (`&**tenant.base()`), whose commits' classes,
    /// Symbols and globals are then named too. Time: O(base objects) for the names, then
    /// O(out-pointers).
    ///
    /// # Errors
    /// [`SegmentError::BaseMissing`] if `heap` has no special objects array.
    pub fn make_portable<O: Objects + ?Sized>(&mut self, heap: &O) -> Result<()> {
        let names = BaseNames::of(heap)?;
        let fingerprint = self.fingerprint;
        for o in &mut self.out {
            if let OutRef::Base(x) = *o {
                *o = names.portable(heap, x).unwrap_or(OutRef::Pinned {
                    fingerprint,
                    index: x,
                });
            }
        }
        Ok(())
    }

    /// Whether every out-pointer names its target portably.
    pub fn is_portable(&self) -> bool {
        !self.out.iter().any(|o| matches!(o, OutRef::Base(_)))
    }

    /// Counts, for reports.
    pub fn report(&self) -> SegmentReport {
        let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
        for o in &self.out {
            let k = match o {
                OutRef::Base(_) => "base object",
                OutRef::Outside(_) => "tenant object",
                OutRef::Special(_) => "special object",
                OutRef::Symbol(_) => "symbol",
                OutRef::Class { .. } => "class",
                OutRef::Global(_) => "global",
                OutRef::Character(_) => "character",
                OutRef::Pinned { .. } => "pinned base object",
            };
            *by_kind.entry(k.to_owned()).or_default() += 1;
        }
        SegmentReport {
            state: self.state,
            portable: self.is_portable(),
            fingerprint: self.fingerprint,
            objects: self.objects.len(),
            roots: self.roots.len(),
            slots: self.objects.iter().map(|o| o.slots.len()).sum(),
            bytes: self.objects.iter().map(|o| o.bytes.len()).sum(),
            out_pointers: self.out.len(),
            out_by_kind: by_kind.into_iter().collect(),
            hosts: self.hosts.len(),
        }
    }

    /// Materialises the segment in `tenant` and answers the new roots (then every member).
    /// Out-pointers bind as in the module doc: `Base` and `Pinned` only into a tenant of the
    /// same base (its fingerprint, or a version committed over it), `Outside` to
    /// `outside[k]` (the caller's values, normally [`TenantSegment::outside`] of the same
    /// tenant), portable ones by name in the tenant's version of its base. What does not
    /// bind is an error listing every one, unless `accept_unbound`, in which case it reads
    /// as nil and is listed in the report. Every member keeps its
    /// identity hash, cut to the width of the tenant's base
    /// ([`cowheap_heap::BaseHeap::hash_bits`]) where it is wider (a segment of a Spur
    /// tenant imported into a V3 one); then the hashed collections among the members are
    /// rehashed ([`crate::rehash`]) unless the import binds every out-pointer to what it
    /// was and cuts no hash. Time:
    /// O(base objects) when portable out-pointers need names, then O(segment size).
    ///
    /// A segment holding host objects ([`crate::hosts`]) is refused here with
    /// [`SegmentError::Host`] (no plugin for its kind): import it with
    /// [`TenantSegment::import_with_hosts`].
    ///
    /// # Errors
    /// [`SegmentError::Unbound`] naming what did not bind; [`SegmentError::Tenant`] if the
    /// tenant refuses an allocation (a quota); [`SegmentError::BadSegment`] for a reference
    /// to a member or out-pointer the segment does not have, or, in a base read from an
    /// image, a member whose class is not a class (an out-pointer binding to nil, a Symbol,
    /// a global that is none: no SmallInteger format word in its field 2);
    /// [`SegmentError::Host`] for a host object; [`SegmentError::NotHeldByTarget`] for an
    /// immediate the tenant's image does not hold (an integer past its SmallIntegers, say),
    /// which is made as that image holds it where it has one (a Spur Character in a V3
    /// image: its CharacterTable's), or a compiled method whose header does not count its
    /// literals as the image's headers do (a Spur method in a V3 image).
    pub fn import_into(
        &mut self,
        tenant: &mut Tenant,
        outside: &[Value],
        accept_unbound: bool,
    ) -> Result<Imported> {
        self.import_with_hosts(tenant, outside, accept_unbound, &HostPlugins::new(), false)
    }

    /// [`TenantSegment::import_into`], each member that is a host object's proxy made again
    /// by its kind's plugin in `plugins` ([`crate::hosts`]): the proxy keeps the member's
    /// class, body and identity hash, and [`Tenant::host_object`] answers the object the
    /// plugin made. A kind with no plugin, or a host object extracted without its state, is
    /// refused, unless `placeholders`: then the member gets a
    /// [`HostPlaceholder`](crate::hosts::HostPlaceholder) (its kind and saved bytes) and is
    /// listed in [`Imported::placeholders`]. Every reference and the tenant's quota are
    /// checked, and every host object made, before anything is allocated in the tenant, so
    /// a refused import leaves the tenant as it was (what fails part-way, such as an arena
    /// the allocator cannot grow or a hashed collection the rehash refuses, frees the members
    /// made so far, with [`Tenant::free_unreachable`]). Time: as
    /// [`TenantSegment::import_into`], plus the plugins' work.
    ///
    /// # Errors
    /// As [`TenantSegment::import_into`]; [`SegmentError::Host`] with
    /// [`HostError::NoPlugin`](cowheap_tenants::hosts::HostError::NoPlugin) or
    /// [`HostError::NotSaved`](cowheap_tenants::hosts::HostError::NotSaved) naming the kind
    /// (unless `placeholders`), or
    /// [`HostError::Restore`](cowheap_tenants::hosts::HostError::Restore) if a plugin fails.
    pub fn import_with_hosts(
        &mut self,
        tenant: &mut Tenant,
        outside: &[Value],
        accept_unbound: bool,
        plugins: &HostPlugins,
        placeholders: bool,
    ) -> Result<Imported> {
        self.import_inner(
            tenant,
            outside,
            accept_unbound,
            HostSource::Make(plugins, placeholders),
            false,
        )
    }

    /// The segment brought back into the tenant it was swapped out of ([`crate::swap`]):
    /// `outside` are the very objects its `Outside` out-pointers named, so every out-pointer
    /// binds to what it was, every member keeps its hash, and nothing needs rehashing.
    /// Host objects are made again by `plugins`, as [`TenantSegment::import_with_hosts`]
    /// makes them (before anything is allocated).
    ///
    /// `host_objects` are the segment's host objects made already, one per entry of its
    /// host objects section, in order ([`TenantSegment::make_hosts`]): the swapper makes
    /// them without holding its lock, so a plugin may call back into it.
    pub(crate) fn import_swapped(
        &mut self,
        tenant: &mut Tenant,
        outside: &[Value],
        host_objects: Vec<DetachedHost>,
    ) -> Result<Imported> {
        self.import_inner(tenant, outside, false, HostSource::Made(host_objects), true)
    }

    /// The segment's host objects made again by `plugins` (as
    /// [`TenantSegment::import_with_hosts`] makes them), in the order of its host objects
    /// section, for [`TenantSegment::import_swapped`]; nothing in any tenant is touched.
    pub(crate) fn make_hosts(
        &self,
        plugins: &HostPlugins,
        placeholders: bool,
    ) -> Result<Vec<DetachedHost>> {
        self.check_hosts()?;
        crate::hosts::restore(&self.hosts, plugins, placeholders)
    }

    /// The host objects section names members, in increasing order.
    fn check_hosts(&self) -> Result<()> {
        if self
            .hosts
            .iter()
            .any(|h| h.member as usize >= self.objects.len())
            || !self.hosts.windows(2).all(|w| w[0].member < w[1].member)
        {
            return Err(SegmentError::BadSegment(
                "host objects of no member, or out of order",
            ));
        }
        Ok(())
    }

    fn import_inner(
        &mut self,
        tenant: &mut Tenant,
        outside: &[Value],
        accept_unbound: bool,
        hosts: HostSource<'_>,
        same_tenant: bool,
    ) -> Result<Imported> {
        // A segment that may not be imported (imported already, say) is refused before
        // anything is allocated in the tenant.
        if !self.state.allows(SegmentState::Imported) {
            return Err(SegmentError::State(StateError {
                from: self.state,
                to: SegmentState::Imported,
            }));
        }
        let base = tenant.base().clone();
        let heap = base.heap();
        // Its base, or a version the tenant's has moved on from: base objects by index.
        let same_base = base.descends_from_fingerprint(self.fingerprint);
        let needs_names = self.out.iter().any(|o| {
            !matches!(
                o,
                OutRef::Base(_) | OutRef::Outside(_) | OutRef::Pinned { .. }
            )
        });
        // The names of the tenant's version: a global its commits gave another value binds
        // to that value, as the tenant sees it.
        let names = if needs_names {
            Some(BaseNames::of(&*base)?)
        } else {
            None
        };
        let mut unbound = Vec::new();
        let mut is_bound = Vec::with_capacity(self.out.len());
        let nil = heap.nil();
        let bound: Vec<Value> = self
            .out
            .iter()
            .map(|o| {
                let b = match o {
                    // The version's objects, those its commits added included.
                    OutRef::Base(x) if same_base => base.object(*x).ok().map(|_| Value::base(*x)),
                    OutRef::Base(_) => None,
                    // That base, or a version made over it: the object at the same index.
                    OutRef::Pinned { fingerprint, index } => base
                        .descends_from_fingerprint(*fingerprint)
                        .then_some(Value::base(*index))
                        .filter(|_| base.object(*index).is_ok()),
                    OutRef::Outside(k) => outside.get(*k as usize).copied(),
                    _ => names.as_ref().and_then(|n| n.resolve(&*base, o)),
                };
                is_bound.push(b.is_some());
                b.unwrap_or_else(|| {
                    unbound.push(o.to_string());
                    nil
                })
            })
            .collect();
        if !unbound.is_empty() && !accept_unbound {
            return Err(SegmentError::Unbound(unbound));
        }
        let bad = |what| SegmentError::BadSegment(what);
        // Each member's hash as the target base holds hashes: one wider than its width
        // (from a base of wider hashes, or a file) is cut to it, and the hashed collections
        // placed by the recorded hashes are then rehashed. A segment brought back into the
        // tenant it was swapped out of keeps every hash exactly as it was.
        let hash_bits = heap.hash_bits();
        let hash_of = |h: u32| {
            if same_tenant {
                h
            } else {
                crate::fit_hash(h, hash_bits)
            }
        };
        let hashes_cut = self.objects.iter().any(|o| hash_of(o.hash) != o.hash);
        // Every reference checked, and the classes ordered, before the tenant is touched: a
        // segment refused for its content allocates nothing.
        let order = check_members(&self.objects, self.out.len(), &self.roots)?;
        // A member whose class did not bind (accepted unbound), or whose class is such a
        // member, has no class to be made with: it is not made, and a reference to it reads
        // nil, as the Etoys path leaves the instances of a class it cannot bind (made with
        // the nil of the out-pointer, it would be an object whose class is nil). In class
        // order, so a member class is decided before its instances.
        let mut not_made = vec![false; self.objects.len()];
        for &i in &order {
            not_made[i] = match self.objects[i].class {
                SRef::Out(k) => !is_bound.get(k as usize).copied().unwrap_or(false),
                SRef::Obj(j) => not_made.get(j as usize).copied().unwrap_or(false),
                SRef::Imm(_) => false,
            };
        }
        // What the members are made with, checked before the tenant is touched: in a base
        // read from a Squeak image, each immediate as the image holds it (a Spur Character
        // in a V3 image is its CharacterTable's, an integer past its SmallIntegers is
        // refused), each class a class (a file's class out-pointer may bind to nil, a
        // Symbol or a global that is none), and each compiled method's header counting its
        // literals as the image's headers do (a V3 method in a Spur image, or the other way
        // round, does not). A segment swapped back into its own tenant has
        // both as they were; a base built rather than read from an image takes any object
        // as a class, as its tenants do.
        let immediates = if same_tenant {
            crate::Immediates::Any
        } else {
            crate::Immediates::of(&*base)
        };
        let mut converted = false;
        for (o, _) in self
            .objects
            .iter()
            .zip(&not_made)
            .filter(|&(_, &skip)| !skip)
        {
            let class_ok = immediates == crate::Immediates::Any
                || match o.class {
                    SRef::Out(k) => match bound.get(k as usize) {
                        Some(&c) => crate::is_class(tenant, c)?,
                        None => false,
                    },
                    SRef::Obj(j) => self.objects.get(j as usize).is_some_and(|c| {
                        let format_word = c.slots.get(crate::CLASS_FORMAT_SLOT);
                        c.format == Format::Pointers
                            && matches!(format_word, Some(SRef::Imm(w)) if w.as_int().is_some())
                    }),
                    SRef::Imm(_) => false,
                };
            if !class_ok {
                return Err(bad("a member whose class is not a class (no format word)"));
            }
            if o.format == Format::CompiledMethod {
                let header = match o.slots.first() {
                    Some(SRef::Imm(w)) => w.as_int(),
                    _ => None,
                };
                immediates.check_method(header, o.slots.len())?;
            }
            for s in &o.slots {
                if let SRef::Imm(w) = *s {
                    converted |= !immediates.convert(&*base, w)?.same_word(Value::shared(w));
                }
            }
        }
        // And the tenant's quota for all of them: a quota refusal part-way would leave the
        // members made so far.
        let sizes: Vec<ObjectSize> = self
            .objects
            .iter()
            .zip(&not_made)
            .filter(|&(_, &skip)| !skip)
            .map(|(o, _)| ObjectSize {
                slots: o.slots.len(),
                bytes: o.bytes.len(),
            })
            .collect();
        tenant.check_room(&sizes)?;
        // The host objects are made (by their plugins, or as placeholders) before the
        // tenant is touched: a missing plugin refuses the import with nothing allocated.
        self.check_hosts()?;
        let host_objects = match hosts {
            HostSource::Make(plugins, placeholders) => {
                crate::hosts::restore(&self.hosts, plugins, placeholders)?
            }
            HostSource::Made(made) if made.len() == self.hosts.len() => made,
            HostSource::Made(_) => return Err(bad("host objects made for another segment")),
        };
        // Classes inside the segment before their instances: one pass in that order. What
        // fails from here (an allocator that cannot grow the arena, a host refused, a rehash
        // refused) frees the members made so far before it is answered.
        let n = self.objects.len();
        // The memory to free the members again, had before the first is made.
        let reserve = tenant.reserve_collection(n)?;
        let mut made: Vec<Option<Value>> = vec![None; n];
        let objects = &self.objects;
        let (hosts_section, roots_section, out) = (&self.hosts, &self.roots, &self.out);
        let build = |tenant: &mut Tenant, made: &mut Vec<Option<Value>>| -> Result<_> {
            let mut nils: Vec<Value> = Vec::new();
            for i in order {
                if not_made[i] {
                    continue;
                }
                let o = &objects[i];
                let class = match o.class {
                    SRef::Obj(j) => match made.get(j as usize) {
                        Some(Some(c)) => *c,
                        Some(None) => return Err(bad("members whose classes form a cycle")),
                        None => return Err(bad("a class reference to no member")),
                    },
                    SRef::Out(k) => *bound
                        .get(k as usize)
                        .ok_or(bad("a class reference to no out-pointer"))?,
                    SRef::Imm(_) => return Err(bad("an immediate as a class")),
                };
                // Slots start nil and are set below; the identity hash is the member's, as
                // wide as the base's.
                nils.resize(o.slots.len(), nil);
                let v = tenant.alloc_with_hash(
                    class,
                    o.format,
                    &nils[..o.slots.len()],
                    &o.bytes,
                    hash_of(o.hash),
                )?;
                made[i] = Some(v);
            }
            if made
                .iter()
                .zip(&not_made)
                .any(|(m, &skip)| m.is_none() && !skip)
            {
                return Err(bad("members whose classes form a cycle"));
            }
            // Every member by number; one not made reads nil.
            let made: Vec<Value> = made.iter().map(|m| m.unwrap_or(nil)).collect();
            // Each proxy member is given its host object: the member is the proxy, with the
            // class, format, body and identity hash the segment gave it.
            let mut hosts = Vec::new();
            let mut placeholder_list = Vec::new();
            for (h, host) in hosts_section.iter().zip(host_objects) {
                // A member not made has no proxy: its host object is dropped.
                if not_made[h.member as usize] {
                    continue;
                }
                let proxy = made[h.member as usize];
                // A placeholder is the tenant's own: listed by `Tenant::placeholders`, its bytes
                // kept through snapshots and segments.
                let is_placeholder = host.object().is_none();
                tenant.attach_host(proxy, host)?;
                if is_placeholder {
                    placeholder_list.push(Placeholder {
                        member: h.member,
                        proxy,
                    });
                } else {
                    hosts.push(proxy);
                }
            }
            for (i, o) in objects.iter().enumerate() {
                if not_made[i] {
                    continue;
                }
                for (k, s) in o.slots.iter().enumerate() {
                    let v = match *s {
                        SRef::Imm(w) => immediates.convert(&*base, w)?,
                        SRef::Obj(j) => *made
                            .get(j as usize)
                            .ok_or(bad("a reference to no member"))?,
                        SRef::Out(j) => *bound
                            .get(j as usize)
                            .ok_or(bad("a reference to no out-pointer"))?,
                    };
                    tenant.set_slot(made[i], k, v)?;
                }
            }
            let roots = roots_section
                .iter()
                .map(|&r| {
                    made.get(r as usize)
                        .copied()
                        .ok_or(bad("a root that is no member"))
                })
                .collect::<Result<Vec<_>>>()?;
            // Hashed collections holding objects whose identity hashes may differ from the
            // writer's (bound by name in another base, or bound to other objects) are rehashed;
            // a same-base import binding every out-pointer as it was changes no hash, unless
            // the segment lost its classes' hashes: a Spur segment gives each class of its
            // own hash 0 (the class-table index comes on load), so a member class with hash 0
            // makes the import rehash (at worst needlessly, for a class whose hash was 0).
            // So does a member whose hash was cut to the base's width.
            let class_hash_lost = objects.iter().any(|o| {
                matches!(o.class, SRef::Obj(j)
                    if objects.get(j as usize).is_some_and(|c| c.hash == 0))
            });
            let same_targets = !class_hash_lost
                && !hashes_cut
                && !converted
                && (same_tenant && same_base && unbound.is_empty()
                    || same_base
                        && !needs_names
                        && unbound.is_empty()
                        && !out.iter().any(|o| matches!(o, OutRef::Outside(_))));
            let rehash = match (same_targets, names) {
                (true, _) => RehashReport::default(),
                (false, Some(n)) => crate::rehash::rehash_members(tenant, &n, &made)?,
                (false, None) => match BaseNames::of(&*base) {
                    Ok(n) => crate::rehash::rehash_members(tenant, &n, &made)?,
                    // No special objects: not a Squeak base, no hashed collection classes.
                    Err(_) => RehashReport::default(),
                },
            };
            Ok((roots, made, hosts, placeholder_list, rehash))
        };
        let (roots, made, hosts, placeholder_list, rehash) = match build(tenant, &mut made) {
            Ok(built) => built,
            Err(e) => {
                // In the memory reserved before the first member: not refused.
                let _ = tenant.free_unreachable_with(made.iter().flatten(), reserve);
                return Err(e);
            }
        };
        let next = SegmentState::Imported;
        if let Err(e) = self.state.advance(next) {
            let made: Vec<Value> = made
                .iter()
                .zip(&not_made)
                .filter(|&(_, &skip)| !skip)
                .map(|(&m, _)| m)
                .collect();
            let _ = tenant.free_unreachable_with(&made, reserve);
            return Err(SegmentError::State(e));
        }
        let not_made = (0u32..)
            .zip(&not_made)
            .filter(|&(_, &skip)| skip)
            .map(|(i, _)| i)
            .collect();
        Ok(Imported {
            roots,
            members: made,
            not_made,
            unbound,
            rehash,
            hosts,
            placeholders: placeholder_list,
        })
    }
}

/// Where an import's host objects come from.
enum HostSource<'a> {
    /// Made by these plugins (placeholders accepted or not) before anything is allocated.
    Make(&'a HostPlugins, bool),
    /// Made already, one per entry of the host objects section.
    Made(Vec<DetachedHost>),
}

/// A segment materialised in a tenant.
#[derive(Debug)]
pub struct Imported {
    /// The roots, in the segment's order.
    pub roots: Vec<Value>,
    /// Every member, by number (nil for a member not made: see
    /// [`Imported::not_made`]).
    pub members: Vec<Value>,
    /// The members not made, by number: their class did not bind (an out-pointer accepted
    /// unbound, listed in [`Imported::unbound`]), or is a member not made. Each reads nil
    /// wherever the segment refers to it.
    pub not_made: Vec<u32>,
    /// The out-pointers that did not bind (read as nil), described.
    pub unbound: Vec<String>,
    /// The hashed collections among the members, rehashed where their elements' hashes
    /// changed (see [`crate::rehash`]); positions are member numbers.
    pub rehash: RehashReport,
    /// The proxies of the host objects their plugins made again, by member number.
    pub hosts: Vec<Value>,
    /// The members made as placeholders (no plugin for their kind, or no saved state), by
    /// member number: each one's host object is a
    /// [`HostPlaceholder`](crate::hosts::HostPlaceholder).
    pub placeholders: Vec<Placeholder>,
}

impl Imported {
    /// The hashed collections among the members that the model did not rehash and the
    /// image's own `rehash` should be sent to
    /// ([`crate::rehash::RehashReport::left_for_image`]), for `cowheap_vm`'s
    /// `Vm::rehash_by_image`. Time: O(collections not rehashed).
    pub fn left_for_image(&self) -> Vec<Value> {
        self.rehash
            .left_for_image()
            .into_iter()
            .filter_map(|i| self.members.get(i).copied())
            .collect()
    }
}

/// What `cowheap segment info` prints for a cowheap segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// The state.
    pub state: SegmentState,
    /// Whether every out-pointer is portable.
    pub portable: bool,
    /// The base it was extracted from.
    pub fingerprint: Fingerprint,
    /// Members.
    pub objects: usize,
    /// Roots.
    pub roots: usize,
    /// Pointer slots.
    pub slots: usize,
    /// Raw bytes.
    pub bytes: usize,
    /// Out-pointers.
    pub out_pointers: usize,
    /// Out-pointers by kind.
    pub out_by_kind: Vec<(String, usize)>,
    /// Members that are host objects' proxies.
    pub hosts: usize,
}

impl fmt::Display for SegmentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cowheap segment: {:?}, {}, from base {}",
            self.state,
            if self.portable {
                "portable"
            } else {
                "bound to its base"
            },
            self.fingerprint
        )?;
        writeln!(
            f,
            "objects:         {} ({} roots, {} slots, {} bytes)",
            self.objects, self.roots, self.slots, self.bytes
        )?;
        let kinds: Vec<String> = self
            .out_by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        writeln!(
            f,
            "out-pointers:    {} ({})",
            self.out_pointers,
            kinds.join(", ")
        )?;
        if self.hosts > 0 {
            writeln!(f, "host objects:    {}", self.hosts)?;
        }
        Ok(())
    }
}
