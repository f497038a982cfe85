//! A tenant's private space: copies of base objects and new objects, in one word arena.
//!
//! **Layout.** A private object lives in the tenant's word arena in the base's own layout
//! ([`cowheap_heap::layout`]): a three-word header (class, size word, info word), then its
//! pointer slots; an object with raw bytes has one more word after its slots, the offset of
//! its bytes in the space's byte arena. A private reference names the object by a versioned
//! key ([`Keys`]), whose link is the object's word offset: a read of a private slot is the
//! key's record, the size word and the slot, three dependent loads. A forwarder (a becomed
//! object, or a base object diverted by a become) is one word, its target, and its link
//! carries [`FORWARDER`]. A root stub (a root of a segment swapped out, see
//! [`crate::stubs`]) is one word too, its segment's id, and its link carries [`STUB`].
//!
//! **Why bytes apart.** Slots are cells (a read through `&Tenant` patches a slot that holds a
//! forwarder: lazy become), and raw bytes are handed out as `&[u8]`; keeping them in their own
//! arena gives both without unsafe code.
//!
//! **Space and compaction.** A freed object, or the body a forwarder replaced, leaves dead
//! words behind. The arenas grow by a quarter at a time (so a copy holds little slack), and
//! before one grows, or after a collection, a space whose dead words pass half its length is
//! compacted: every live block is copied, in key order, into fresh arenas and relinked. No
//! reference changes (keys do not move), so compaction is invisible outside this module.
//! Time: O(keys ever used + live words).

#![warn(clippy::cast_possible_truncation)]

use crate::slab::{Keys, KeysView, PartsError, SlabKey};
use crate::tenant::try_vec;
use crate::{Error, Result};
use cowheap_heap::layout::{self, HEADER_WORDS};
use cowheap_heap::{Format, ObjectSize, ObjectView, PrivateKey, Word};
use std::cell::Cell;

/// The bit of a link that says the entry is a forwarder (its block is the one target word).
const FORWARDER: u32 = 1 << 31;
/// The bit of a link that says the entry is a root stub (its block is the one segment id).
const STUB: u32 = 1 << 30;
/// Either bit: the entry is no object.
const NOT_OBJECT: u32 = FORWARDER | STUB;
/// Largest word offset a link can hold.
const MAX_OFFSET: usize = (STUB - 1) as usize;

/// An object's body outside the space: a copy made before it enters the tenant (the first
/// write checks and reserves first; a two-way become makes both copies first), or one read
/// from a snapshot.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub(crate) class: Word,
    pub(crate) format: Format,
    pub(crate) hash: u32,
    /// The auxiliary bits of the base object it copies (none for a body read from a
    /// snapshot): they belong to the body, as its format does, and go with it through a
    /// two-way become into the version a commit makes.
    pub(crate) aux: u32,
    pub(crate) slots: Box<[Word]>,
    pub(crate) bytes: Box<[u8]>,
}

impl Body {
    /// A copy of a base object, its memory reserved fallibly.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the allocator refuses; as [`check_copyable`].
    pub(crate) fn try_copy_of(view: &ObjectView<'_>) -> Result<Body> {
        check_copyable(view)?;
        let mut slots = try_vec(Word::from_bits(1), view.slots.len())?;
        slots.copy_from_slice(view.slots);
        let mut bytes = try_vec(0u8, view.bytes.len())?;
        bytes.copy_from_slice(view.bytes);
        Ok(Body {
            class: view.class,
            format: view.format,
            hash: view.hash,
            aux: view.aux,
            slots: slots.into_boxed_slice(),
            bytes: bytes.into_boxed_slice(),
        })
    }

    pub(crate) fn size(&self) -> ObjectSize {
        ObjectSize {
            slots: self.slots.len(),
            bytes: self.bytes.len(),
        }
    }
}

/// [`cowheap_heap::Error::InvalidWord`] if a slot of a base object holds a private reference
/// or an invalid word, or its class word is no base reference. A base holds none (the builder and verification refuse them); a base
/// opened without verification might, and copied into the tenant such a word would name one
/// of the tenant's own objects.
///
/// Every first write runs this over the object's slots: the test is a fold of
/// [`Word::stray_bits`] with no early exit, which the compiler turns into a few vector
/// instructions a pair of slots, and only an object that fails it is searched for the word
/// to name.
pub(crate) fn check_copyable(view: &ObjectView<'_>) -> Result<()> {
    // The class too: a class word is a base reference in a verified base; copied, any
    // other would be kept as the copy's class, and a commit would publish what it names.
    if !view.class.is_base() {
        return Err(cowheap_heap::Error::InvalidWord(view.class).into());
    }
    if view.slots.iter().fold(0, |acc, w| acc | w.stray_bits()) == 0 {
        return Ok(());
    }
    match view.slots.iter().find(|w| w.stray_bits() != 0) {
        Some(&w) => Err(cowheap_heap::Error::InvalidWord(w).into()),
        None => Ok(()),
    }
}

/// An entry outside the space, to insert: a body, a forwarder to a word, or a root stub of a
/// segment.
#[derive(Debug)]
pub(crate) enum Entry {
    Object(Body),
    Forwarded(Word),
    Stub(u64),
}

/// Bytes an object is charged beyond its slots and bytes: its key's record and its header.
pub(crate) const ENTRY_OVERHEAD: u64 = (Keys::RECORD_BYTES + 8 * HEADER_WORDS) as u64;

/// Bytes a forwarder is charged: its key's record and its target word.
pub(crate) const FORWARDER_COST: u64 = Keys::RECORD_BYTES as u64 + 8;

/// Bytes an entry outside the space will be charged once inserted.
pub(crate) fn entry_cost(entry: &Entry) -> u64 {
    match entry {
        Entry::Object(b) => cost(b.size()),
        Entry::Forwarded(_) | Entry::Stub(_) => FORWARDER_COST,
    }
}

/// Bytes an object of `size` is charged: [`ENTRY_OVERHEAD`], 8 a slot, and its bytes with
/// the word that places them.
pub(crate) fn cost(size: ObjectSize) -> u64 {
    let slots = u64::try_from(size.slots).unwrap_or(u64::MAX);
    let bytes = u64::try_from(size.bytes).unwrap_or(u64::MAX);
    let placed = if bytes == 0 {
        0
    } else {
        bytes.saturating_add(8)
    };
    ENTRY_OVERHEAD
        .saturating_add(slots.saturating_mul(8))
        .saturating_add(placed)
}

fn slab_key(k: PrivateKey) -> SlabKey {
    SlabKey::new(k.key(), k.generation())
}

fn private_key(k: SlabKey) -> PrivateKey {
    PrivateKey::new(k.index(), k.generation())
}

/// Words of an object's block of `slots` slots and `bytes` raw bytes.
fn block_words(slots: usize, bytes: usize) -> usize {
    HEADER_WORDS + slots + usize::from(bytes != 0)
}

/// A live private object in the arena, to read. Valid while the space is borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Obj<'a> {
    /// The block's word offset.
    at: usize,
    /// The slot count.
    slots: usize,
    space: &'a Space,
}

impl<'a> Obj<'a> {
    #[inline(always)]
    fn header(self, i: usize) -> u64 {
        self.space
            .words
            .get(self.at + i)
            .map_or(0, |c| c.get().bits())
    }

    /// The class.
    #[inline(always)]
    pub(crate) fn class(self) -> Word {
        self.space
            .words
            .get(self.at)
            .map_or(Word::from_bits(1), Cell::get)
    }

    /// Sets the class through its cell, as a read patches a slot: the collector's patch of a
    /// class that is a forwarder.
    pub(crate) fn patch_class(self, class: Word) {
        if let Some(c) = self.space.words.get(self.at) {
            c.set(class);
        }
    }

    /// The format. Always one the space was given: the arena holds only encoded formats.
    #[inline(always)]
    pub(crate) fn format(self) -> Format {
        layout::format(self.header(layout::INFO_WORD)).unwrap_or(Format::Pointers)
    }

    /// The identity hash.
    #[inline(always)]
    pub(crate) fn hash(self) -> u32 {
        layout::hash(self.header(layout::INFO_WORD))
    }

    /// The auxiliary bits ([`cowheap_heap::Builder::set_aux`]): a copy's are its base
    /// object's, a new object's none; a two-way become moves them with the bodies.
    pub(crate) fn aux(self) -> u32 {
        layout::aux(self.header(layout::INFO_WORD))
    }

    /// The size.
    #[inline(always)]
    pub(crate) fn size(self) -> ObjectSize {
        ObjectSize {
            slots: self.slots,
            bytes: layout::byte_count(self.header(layout::SIZE_WORD)),
        }
    }

    /// The pointer slots, as cells (a read patches a forwarder it finds).
    pub(crate) fn slots(self) -> &'a [Cell<Word>] {
        let start = self.at + HEADER_WORDS;
        self.space
            .words
            .get(start..start + self.slots)
            .unwrap_or(&[])
    }

    /// Slot `i`, if in range.
    #[inline(always)]
    pub(crate) fn slot(self, i: usize) -> Option<&'a Cell<Word>> {
        if i < self.slots {
            self.space.words.get(self.at + HEADER_WORDS + i)
        } else {
            None
        }
    }

    /// The raw bytes.
    pub(crate) fn bytes(self) -> &'a [u8] {
        let n = layout::byte_count(self.header(layout::SIZE_WORD));
        if n == 0 {
            return &[];
        }
        // The word after the slots places the bytes (the space wrote both).
        let Some(start) = self
            .space
            .words
            .get(self.at + HEADER_WORDS + self.slots)
            .and_then(|w| usize::try_from(w.get().bits()).ok())
        else {
            return &[];
        };
        self.space
            .bytes
            .get(start..start.saturating_add(n))
            .unwrap_or(&[])
    }
}

/// What a live key names.
#[derive(Clone, Copy, Debug)]
pub(crate) enum State<'a> {
    Object(Obj<'a>),
    Forwarded(Word),
    /// A root stub: the object is in the segment of this id, swapped out.
    Stub(u64),
}

impl<'a> State<'a> {
    /// The object, if it is one.
    #[inline(always)]
    pub(crate) fn body(self) -> Option<Obj<'a>> {
        match self {
            State::Object(o) => Some(o),
            State::Forwarded(_) | State::Stub(_) => None,
        }
    }

    /// The target, if it is a forwarder.
    #[cfg(test)]
    pub(crate) fn target(self) -> Option<Word> {
        match self {
            State::Forwarded(t) => Some(t),
            State::Object(_) | State::Stub(_) => None,
        }
    }
}

/// Proof that an object is private and may be written: a live object of the private space.
/// The space hands one out only for its own objects, and a base object has none until
/// [`crate::Tenant::writable`] has copied it (the first write), so holding a `Writable`
/// proves the copy was made. It is the only way to turn an object into a forwarder and to
/// write anything but one slot through the object's own key ([`Space::slot_mut_of`]).
#[derive(Debug)]
pub(crate) struct Writable<'a> {
    space: &'a mut Space,
    index: u32,
    /// The object's word offset (its link has no [`FORWARDER`] bit).
    at: usize,
}

impl Writable<'_> {
    fn slot_count(&self) -> usize {
        layout::slot_count(self.space.words[self.at + layout::SIZE_WORD].get().bits())
    }

    /// Slot `i`, to write, if in range. Always inlined: [`Tenant::set_slot`]'s quick and
    /// slow writes end here (its inlined write ends in [`Space::slot_mut_of`]).
    ///
    /// [`Tenant::set_slot`]: crate::Tenant::set_slot
    #[inline(always)]
    pub(crate) fn slot_mut(&mut self, i: usize) -> Option<&mut Word> {
        let at = self.space.slot_index(self.at, i)?;
        Some(self.space.words[at].get_mut())
    }

    /// Slots `start..start + n`, to write, if all in range.
    #[inline]
    pub(crate) fn slots_mut(&mut self, start: usize, n: usize) -> Option<&mut [Cell<Word>]> {
        let end = start.checked_add(n)?;
        if end > self.slot_count() {
            return None;
        }
        let from = self.at + HEADER_WORDS;
        self.space.words.get_mut(from + start..from + end)
    }

    /// Sets the class.
    pub(crate) fn set_class(&mut self, class: Word) {
        self.space.words[self.at].set(class);
    }

    /// Sets the identity hash, keeping the rest of the info word (format and aux bits).
    pub(crate) fn set_hash(&mut self, hash: u32) {
        let cell = &self.space.words[self.at + layout::INFO_WORD];
        let info = cell.get().bits();
        cell.set(Word::from_bits(info & !0xFFFF_FFFF | u64::from(hash)));
    }

    /// Sets the auxiliary bits (at most [`cowheap_heap::AUX_BITS`] wide, as the base's
    /// are), keeping the hash and format: a copy's bits where a snapshot or a segment did
    /// not keep them.
    pub(crate) fn set_aux(&mut self, aux: u32) {
        let cell = &self.space.words[self.at + layout::INFO_WORD];
        let info = cell.get().bits();
        let kept = layout::info_word(layout::Head {
            class: Word::from_bits(0),
            format: layout::format(info).unwrap_or(Format::Pointers),
            hash: layout::hash(info),
            aux: aux & ((1 << cowheap_heap::AUX_BITS) - 1),
        });
        if let Ok(w) = kept {
            cell.set(Word::from_bits(w));
        }
    }

    /// Sets the format, keeping the hash and aux bits: a fired ephemeron's, which becomes
    /// an object of plain pointers.
    pub(crate) fn set_format(&mut self, format: Format) {
        let cell = &self.space.words[self.at + layout::INFO_WORD];
        let info = cell.get().bits();
        let kept = layout::info_word(layout::Head {
            class: Word::from_bits(0),
            format,
            hash: layout::hash(info),
            aux: layout::aux(info),
        });
        if let Ok(w) = kept {
            cell.set(Word::from_bits(w));
        }
    }

    /// The raw bytes, to write.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let size = self.space.words[self.at + layout::SIZE_WORD].get().bits();
        let (slots, n) = (layout::slot_count(size), layout::byte_count(size));
        if n == 0 {
            return &mut [];
        }
        let start = self.space.words[self.at + HEADER_WORDS + slots]
            .get()
            .bits();
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        self.space
            .bytes
            .get_mut(start..start.saturating_add(n))
            .unwrap_or(&mut [])
    }

    /// Turns the object into a forwarder to `target` (one-way become) and answers the size
    /// it had. Its block's first word becomes the target; the rest is dead until compaction.
    pub(crate) fn forward(self, target: Word) -> ObjectSize {
        self.space.forwarders += 1;
        self.shrink_to(target, FORWARDER)
    }

    /// Turns the object into a root stub of segment `segment` (its body now lives only in
    /// the segment) and answers the size it had.
    pub(crate) fn stub(self, segment: u64) -> ObjectSize {
        self.space.count_stub(segment, true);
        self.shrink_to(Word::from_bits(segment), STUB)
    }

    /// Keeps the block's first word, set to `first`, and relinks the key with `kind`.
    fn shrink_to(self, first: Word, kind: u32) -> ObjectSize {
        let size = self.space.words[self.at + layout::SIZE_WORD].get().bits();
        let size = ObjectSize {
            slots: layout::slot_count(size),
            bytes: layout::byte_count(size),
        };
        self.space.words[self.at].set(first);
        self.space.dead_words += block_words(size.slots, size.bytes) - 1;
        self.space.dead_bytes += size.bytes;
        // Lossless: `at` came from a link.
        let link = u32::try_from(self.at).unwrap_or(0) | kind;
        self.space.keys.relink(self.index, link);
        size
    }
}

/// [`Space::slot_index`] over the arena `words`: the one test of a slot's place, for the
/// space and its view alike.
#[inline(always)]
fn slot_index(words: &[Cell<Word>], at: usize, i: usize) -> Option<usize> {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "the slot is placed by the low 32 bits; the count compare takes all of `i`"
    )]
    let low = i as u32 as usize;
    let slot = at + HEADER_WORDS + low;
    if slot >= words.len() {
        return None;
    }
    let size = words[at + layout::SIZE_WORD].get().bits();
    (i < layout::slot_count(size)).then_some(slot)
}

/// A space's keys and words borrowed by value, for a loop that keeps their addresses and
/// lengths in registers: the writes of a [`crate::TenantWriter`], made through the words'
/// cells while the tenant is borrowed shared, so nothing can move or free them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpaceView<'a> {
    keys: KeysView<'a>,
    words: &'a [Cell<Word>],
}

impl<'a> SpaceView<'a> {
    /// [`Space::slot_of`]: slot `i` of the live object `k` names, if in range.
    #[inline(always)]
    pub(crate) fn slot_of(self, k: PrivateKey, i: usize) -> Option<&'a Cell<Word>> {
        let slot = slot_index(self.words, self.keys.link(slab_key(k))? as usize, i)?;
        self.words.get(slot)
    }

    /// [`Space::slot_at_index`]: slot `i` of the live object at raw index `index`, whatever
    /// its generation, if in range.
    #[inline(always)]
    pub(crate) fn slot_at_index(self, index: u32, i: usize) -> Option<&'a Cell<Word>> {
        let slot = slot_index(self.words, self.keys.link_at(index)? as usize, i)?;
        self.words.get(slot)
    }

    /// [`Space::is_live`]: true if `k` names a live entry (object or forwarder).
    #[inline(always)]
    pub(crate) fn is_live(self, k: PrivateKey) -> bool {
        self.keys.link(slab_key(k)).is_some()
    }
}

/// Private objects and forwarders under versioned keys, in a word arena and a byte arena.
/// Invariants: every live key's link is the offset of its block, a whole object block (the
/// size word's counts, the byte offset word placing the bytes inside `bytes`) or, with
/// [`FORWARDER`], one target word; blocks do not overlap; `dead_words` and `dead_bytes` count
/// what no block holds.
#[derive(Debug, Default)]
pub(crate) struct Space {
    keys: Keys,
    words: Vec<Cell<Word>>,
    bytes: Vec<u8>,
    /// How many entries are forwarders. While none is, no private reference needs patching,
    /// and the read path does not look at the entry a private slot names.
    forwarders: usize,
    dead_words: usize,
    dead_bytes: usize,
    /// Root stubs per segment id, made with the first stub (an idle tenant holds none).
    stubs: Option<Box<rustc_hash::FxHashMap<u64, usize>>>,
}

impl Space {
    /// A space holding `entries` at their keys; every other key below `bound` is retired at
    /// the generation `generation_of` gives it. Memory: 8 bytes per key below `bound`, plus
    /// the entries. Time: O(bound + entries).
    ///
    /// # Errors
    /// [`Error::KeysExhausted`] if a key is not below `bound`, two entries share one, or
    /// `bound` passes the key space; [`Error::OutOfMemory`] if the arenas or the keys'
    /// records cannot be had.
    pub(crate) fn from_parts(
        entries: impl IntoIterator<Item = (u32, Entry)>,
        bound: usize,
        generation_of: impl Fn(u32) -> u32,
    ) -> Result<Space> {
        let entries = entries.into_iter();
        let mut space = Space::default();
        let mut links = Vec::new();
        grow(&mut links, entries.size_hint().0)?;
        for (key, entry) in entries {
            grow(&mut links, 1)?;
            links.push((key, space.append(&entry)?));
        }
        space.keys = Keys::from_parts(bound, generation_of, links).map_err(|e| match e {
            PartsError::Full => Error::KeysExhausted {
                what: "private objects",
            },
            PartsError::OutOfMemory(bytes) => Error::OutOfMemory {
                bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            },
        })?;
        space.forwarders = space
            .keys
            .iter()
            .filter(|&(_, l)| l & FORWARDER != 0)
            .count();
        Ok(space)
    }

    /// Counts a stub of `segment` made (`true`) or gone.
    fn count_stub(&mut self, segment: u64, made: bool) {
        let counts = self.stubs.get_or_insert_with(Box::default);
        let n = counts.entry(segment).or_insert(0);
        if made {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&segment);
            }
        }
    }

    /// How many root stubs segment `segment` has here. Time: O(1).
    pub(crate) fn stubs_of(&self, segment: u64) -> usize {
        self.stubs
            .as_ref()
            .and_then(|c| c.get(&segment).copied())
            .unwrap_or(0)
    }

    /// How many root stubs there are here. Time: O(segments with stubs).
    pub(crate) fn stub_count(&self) -> usize {
        self.stubs.as_ref().map_or(0, |c| c.values().sum())
    }

    /// The keys and words borrowed by value: [`SpaceView`].
    #[inline(always)]
    pub(crate) fn view(&self) -> SpaceView<'_> {
        SpaceView {
            keys: self.keys.view(),
            words: &self.words,
        }
    }

    /// How many entries are forwarders.
    pub(crate) fn forwarder_count(&self) -> usize {
        self.forwarders
    }

    /// True if some entry is a forwarder: a private reference may then need patching.
    #[inline(always)]
    pub(crate) fn has_forwarders(&self) -> bool {
        self.forwarders != 0
    }

    /// What the block at `link` is.
    #[inline(always)]
    fn state(&self, link: u32) -> Option<State<'_>> {
        if link & NOT_OBJECT != 0 {
            let w = self.words.get((link & !NOT_OBJECT) as usize)?.get();
            return Some(if link & FORWARDER != 0 {
                State::Forwarded(w)
            } else {
                State::Stub(w.bits())
            });
        }
        self.object_at(link as usize).map(State::Object)
    }

    /// The object whose block starts at word `at`.
    ///
    /// `at` is a link: a link with [`FORWARDER`] or [`STUB`] set (at least 2^30) lies past
    /// the arena, which `reserve` keeps under [`MAX_OFFSET`] words, so the size word's bounds
    /// check refuses it and no separate test of those bits is made.
    #[inline(always)]
    fn object_at(&self, at: usize) -> Option<Obj<'_>> {
        debug_assert!(self.words.len() <= MAX_OFFSET + 1);
        let size = self.words.get(at + layout::SIZE_WORD)?.get().bits();
        Some(Obj {
            at,
            slots: layout::slot_count(size),
            space: self,
        })
    }

    /// Live entries with their keys, in key order. Time: O(keys ever used).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PrivateKey, State<'_>)> + '_ {
        self.keys
            .iter()
            .filter_map(|(k, link)| Some((private_key(k), self.state(link)?)))
    }

    /// The generation of every key ever handed out, in key order.
    pub(crate) fn gens(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.keys.generations()
    }

    /// Room for objects of `sizes`, so that inserting them next cannot fail for want of
    /// arena (a caller that must insert several or none). Nothing is inserted.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the arenas cannot hold them; nothing changes but capacity.
    pub(crate) fn reserve_objects(&mut self, sizes: &[ObjectSize]) -> Result<()> {
        let words = sizes.iter().fold(0usize, |n, s| {
            n.saturating_add(block_words(s.slots, s.bytes))
        });
        let bytes = sizes.iter().fold(0usize, |n, s| n.saturating_add(s.bytes));
        self.reserve(words, bytes)
    }

    /// Room for `n` more words (forwarders, one word each) in the arena. Nothing changes
    /// on error.
    pub(crate) fn reserve_words(&mut self, n: usize) -> Result<()> {
        self.reserve(n, 0)
    }

    /// Room for `n` more words and `b` more bytes, compacting first where that frees enough.
    #[inline(always)]
    fn reserve(&mut self, n: usize, b: usize) -> Result<()> {
        let short = self.words.capacity() - self.words.len() < n
            || self.bytes.capacity() - self.bytes.len() < b;
        if !short && self.words.len() + n <= MAX_OFFSET {
            return Ok(());
        }
        self.reserve_slow(n, b)
    }

    #[inline(never)]
    fn reserve_slow(&mut self, n: usize, b: usize) -> Result<()> {
        if self.dead_words * 2 > self.words.len() {
            // A failed compaction changes nothing; growing is then the fallback.
            let _ = self.compact();
        }
        // Refused before growing: a request past the arena's reach reserves nothing.
        if self.words.len().saturating_add(n) > MAX_OFFSET {
            return Err(Error::OutOfMemory {
                bytes: u64::try_from(n.saturating_mul(8)).unwrap_or(u64::MAX),
            });
        }
        grow(&mut self.words, n)?;
        grow(&mut self.bytes, b)?;
        Ok(())
    }

    /// Appends the block of `state` to the arenas and answers its link. Nothing changes on
    /// error.
    fn append(&mut self, entry: &Entry) -> Result<u32> {
        match entry {
            Entry::Forwarded(t) => self.append_word(*t, FORWARDER),
            Entry::Stub(segment) => {
                let link = self.append_word(Word::from_bits(*segment), STUB)?;
                self.count_stub(*segment, true);
                Ok(link)
            }
            Entry::Object(b) => self.append_object(
                layout::Head {
                    class: b.class,
                    format: b.format,
                    hash: b.hash,
                    aux: b.aux,
                },
                b.size(),
                Word::from_bits(1),
                |s, by| {
                    for (c, &w) in s.iter_mut().zip(b.slots.iter()) {
                        *c.get_mut() = w;
                    }
                    by.copy_from_slice(&b.bytes);
                },
            ),
        }
    }

    /// Appends a one-word block (a forwarder's target, a stub's segment) linked as `kind`.
    fn append_word(&mut self, w: Word, kind: u32) -> Result<u32> {
        self.reserve(1, 0)?;
        let at = self.words.len();
        self.words.push(Cell::new(w));
        // Lossless: `reserve` keeps offsets at most MAX_OFFSET.
        Ok(u32::try_from(at).unwrap_or(0) | kind)
    }

    /// Appends an object block with header `head`, its slots `init`, then filled by `fill`.
    /// Nothing changes on error.
    fn append_object(
        &mut self,
        head: layout::Head,
        size: ObjectSize,
        init: Word,
        fill: impl FnOnce(&mut [Cell<Word>], &mut [u8]),
    ) -> Result<u32> {
        self.append_with(head, size, std::iter::repeat_n(init, size.slots), &[])
            .inspect(|&at| {
                let at = at as usize + HEADER_WORDS;
                let start = self.bytes.len() - size.bytes;
                fill(
                    &mut self.words[at..at + size.slots],
                    &mut self.bytes[start..],
                );
            })
    }

    /// Appends an object block with header `head` (its class, format, hash and auxiliary
    /// bits) holding `slots` (exactly `size.slots` words) and `bytes` (`size.bytes` of them,
    /// or none for zeros), and answers its offset. Nothing changes on error.
    #[inline]
    fn append_with(
        &mut self,
        head: layout::Head,
        size: ObjectSize,
        slots: impl ExactSizeIterator<Item = Word>,
        bytes: &[u8],
    ) -> Result<u32> {
        let size_word = layout::size_word(size)?;
        let info = layout::info_word(head)?;
        let class = head.class;
        debug_assert_eq!(slots.len(), size.slots);
        self.reserve(block_words(size.slots, size.bytes), size.bytes)?;
        let at = self.words.len();
        let start = self.bytes.len();
        self.words.extend([
            Cell::new(class),
            Cell::new(Word::from_bits(size_word)),
            Cell::new(Word::from_bits(info)),
        ]);
        self.words.extend(slots.map(Cell::new));
        if size.bytes != 0 {
            self.words.push(Cell::new(Word::from_bits(start as u64)));
            if bytes.is_empty() {
                self.bytes.resize(start + size.bytes, 0);
            } else {
                self.bytes.extend_from_slice(bytes);
            }
        }
        // Lossless: `reserve` keeps offsets at most MAX_OFFSET.
        Ok(u32::try_from(at).unwrap_or(0))
    }

    /// Inserts an entry and returns its versioned key. Time: O(size) amortized.
    ///
    /// # Errors
    /// [`Error::KeysExhausted`] when no key is left, [`Error::OutOfMemory`] when the arenas
    /// cannot grow; nothing changes.
    pub(crate) fn insert(&mut self, entry: Entry) -> Result<PrivateKey> {
        let size = match &entry {
            Entry::Object(b) => b.size(),
            Entry::Forwarded(_) | Entry::Stub(_) => ObjectSize { slots: 0, bytes: 0 },
        };
        let words = match &entry {
            Entry::Object(_) => block_words(size.slots, size.bytes),
            Entry::Forwarded(_) | Entry::Stub(_) => 1,
        };
        self.room_for_entry(words)?;
        let forwarder = usize::from(matches!(entry, Entry::Forwarded(_)));
        let link = self.append(&entry)?;
        let k = self.key_for(link)?;
        self.forwarders += forwarder;
        Ok(k)
    }

    /// Inserts a new object of `size`, its slots `init` and its bytes zero, then filled by
    /// `fill`, and returns its key. Time: O(size) amortized.
    ///
    /// # Errors
    /// As [`Space::insert`]; [`cowheap_heap::Error::TooLarge`] past 2^32 slots or bytes.
    pub(crate) fn insert_object(
        &mut self,
        class: Word,
        format: Format,
        hash: u32,
        size: ObjectSize,
        init: Word,
        fill: impl FnOnce(&mut [Cell<Word>], &mut [u8]),
    ) -> Result<PrivateKey> {
        let head = layout::Head {
            class,
            format,
            hash,
            aux: 0,
        };
        let link = self.append_object(head, size, init, fill)?;
        self.key_after_append(link, size.bytes)
    }

    /// Inserts a copy of a base object (checked by [`check_copyable`] before anything is
    /// reserved) and returns its key: the first write, with no copy made on the way.
    /// Time: O(size) amortized.
    ///
    /// # Errors
    /// As [`Space::insert_object`] and [`check_copyable`]; nothing changes.
    pub(crate) fn insert_copy(&mut self, view: &ObjectView<'_>) -> Result<PrivateKey> {
        check_copyable(view)?;
        let head = layout::Head {
            class: view.class,
            format: view.format,
            hash: view.hash,
            aux: view.aux,
        };
        let link = self.append_with(head, view.size(), view.slots.iter().copied(), view.bytes)?;
        self.key_after_append(link, view.size().bytes)
    }

    /// The key of the block just appended at `link` (`bytes` of it in the byte arena): the
    /// arena's room is reserved first, by the append, so that a block past the arena's
    /// reach, or one the allocator refuses, is refused before the keys' records grow. If
    /// the key is refused, the block is taken off the arenas again and nothing changes
    /// but their capacity.
    ///
    /// # Errors
    /// As [`Space::reserve_keys`] and [`Space::key_for`].
    #[inline(always)]
    fn key_after_append(&mut self, link: u32, bytes: usize) -> Result<PrivateKey> {
        if let Err(e) = self.reserve_keys(1) {
            self.words.truncate(link as usize);
            self.bytes.truncate(self.bytes.len() - bytes);
            return Err(e);
        }
        self.key_for(link)
    }

    /// Room for the key of one more entry of `words` arena words, refused first if the
    /// arena cannot place the entry (past its reach after the compaction
    /// [`Space::reserve`] would make), so that such a request leaves the keys' records as
    /// they were. The arena's own room is reserved by the append that follows.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] for an entry past the arena's reach, [`Error::KeysExhausted`]
    /// when no key is left; as [`Space::reserve_keys`]. Nothing is reserved on error.
    #[inline(always)]
    fn room_for_entry(&mut self, words: usize) -> Result<()> {
        let used = if self.dead_words * 2 > self.words.len() {
            self.words.len() - self.dead_words
        } else {
            self.words.len()
        };
        if used.saturating_add(words) > MAX_OFFSET {
            return Err(Error::OutOfMemory {
                bytes: u64::try_from(words.saturating_mul(8)).unwrap_or(u64::MAX),
            });
        }
        self.reserve_keys(1)
    }

    /// A new key for the block at `link` (the caller has reserved a key).
    fn key_for(&mut self, link: u32) -> Result<PrivateKey> {
        self.keys
            .insert(link)
            .map(private_key)
            .map_err(|_| Error::KeysExhausted {
                what: "private objects",
            })
    }

    /// [`Error::KeysExhausted`] unless `n` more entries can be inserted, and the memory of
    /// their keys reserved fallibly ([`Error::OutOfMemory`] if the allocator refuses it);
    /// then no `insert` before them can fail, or allocate, for want of a key. Time: O(n).
    #[inline]
    pub(crate) fn reserve_keys(&mut self, n: usize) -> Result<()> {
        if !self.keys.has_room(n) {
            return Err(Error::KeysExhausted {
                what: "private objects",
            });
        }
        self.keys.try_reserve(n).map_err(|_| Error::OutOfMemory {
            bytes: u64::try_from(n.saturating_mul(Keys::RECORD_BYTES)).unwrap_or(u64::MAX),
        })
    }

    /// What `k` names, if it is alive and of the same generation.
    #[inline(always)]
    pub(crate) fn get(&self, k: PrivateKey) -> Option<State<'_>> {
        self.state(self.keys.link(slab_key(k))?)
    }

    /// Points forwarder `k` at `target` instead. False, changing nothing, unless `k` names a
    /// live forwarder.
    pub(crate) fn retarget(&self, k: PrivateKey, target: Word) -> bool {
        match self.keys.link(slab_key(k)) {
            Some(link) if link & FORWARDER != 0 => {
                self.words[(link & !NOT_OBJECT) as usize].set(target);
                true
            }
            _ => false,
        }
    }

    /// The object `k` names, if it is a live object (not a forwarder). The read path's one
    /// lookup: the key's record, then the object's size word.
    #[inline(always)]
    pub(crate) fn object(&self, k: PrivateKey) -> Option<Obj<'_>> {
        self.object_at(self.keys.link(slab_key(k))? as usize)
    }

    /// The arena index of slot `i` of the block at `at`, if the block is an object that
    /// has that slot. The slot's word is placed by the index's low 32 bits, so `at + 3 +
    /// low` cannot wrap (`at` is a `u32` link), and is bounded first: that test covers the
    /// size word before it, whose own test then folds away. The slot count, under 2^32, is
    /// compared with the whole index, so an index of 2^32 or more (whose low bits might
    /// name a slot in range) is refused there, with no test of its high bits. A forwarder's
    /// or a stub's link is at least 2^30, past the arena, and is refused by the first test.
    /// Read and write both end here.
    #[inline(always)]
    fn slot_index(&self, at: usize, i: usize) -> Option<usize> {
        slot_index(&self.words, at, i)
    }

    /// Slot `i` of the live object `k` names, if in range: [`Space::object`] and
    /// [`Obj::slot`] in one, through [`Space::slot_index`]. The read of
    /// [`crate::Tenant::slot`]'s first inlined path.
    #[inline(always)]
    pub(crate) fn slot_of(&self, k: PrivateKey, i: usize) -> Option<&Cell<Word>> {
        self.view().slot_of(k, i)
    }

    /// Slot `i` of the live object `k` names, to write, if in range: [`Space::slot_of`]'s
    /// write. It needs no [`Writable`]: a private key names a private object, and
    /// [`Space::slot_index`] refuses a forwarder's or a stub's link, so the test of the
    /// link's kind [`Space::writable`] makes is not needed for one slot. The write of
    /// [`crate::Tenant::set_slot`]'s inlined path.
    #[inline(always)]
    pub(crate) fn slot_mut_of(&mut self, k: PrivateKey, i: usize) -> Option<&mut Word> {
        let slot = self.slot_index(self.keys.link(slab_key(k))? as usize, i)?;
        self.words.get_mut(slot).map(Cell::get_mut)
    }

    /// True if `k` names a live entry (object or forwarder).
    #[inline(always)]
    pub(crate) fn is_live(&self, k: PrivateKey) -> bool {
        self.keys.link(slab_key(k)).is_some()
    }

    /// True if `k` names a live object (not a forwarder or a stub): its key's record
    /// alone, by the link's kind bits. Under the invariant that a live object's link is
    /// its whole block, this is [`Space::object`]`(k).is_some()`, with no load of the
    /// block. The settling of a private word read while the space holds a forwarder.
    #[inline(always)]
    pub(crate) fn is_object(&self, k: PrivateKey) -> bool {
        let is = self
            .keys
            .link(slab_key(k))
            .is_some_and(|link| link & NOT_OBJECT == 0);
        debug_assert_eq!(
            is,
            self.object(k).is_some(),
            "a live object's link is its block"
        );
        is
    }

    /// The live object at raw index `i` (the indirection table holds indices), whatever its
    /// generation; `None` for a forwarder or a vacant index.
    #[inline(always)]
    pub(crate) fn object_at_index(&self, i: u32) -> Option<Obj<'_>> {
        self.object_at(self.keys.link_at(i)? as usize)
    }

    /// Slot `i` of the live object at raw index `index` (the indirection table holds
    /// indices), whatever its generation, if in range: [`Space::object_at_index`] and
    /// [`Obj::slot`] in one, through [`Space::slot_index`], which refuses a forwarder's or a
    /// stub's link as [`Space::slot_of`] says. The read through a base reference to a copy.
    #[inline(always)]
    pub(crate) fn slot_at_index(&self, index: u32, i: usize) -> Option<&Cell<Word>> {
        self.view().slot_at_index(index, i)
    }

    /// The object `k` names, to write, if it is a live object (not a forwarder).
    #[inline(always)]
    pub(crate) fn writable(&mut self, k: PrivateKey) -> Option<Writable<'_>> {
        let link = self.keys.link(slab_key(k))?;
        (link & NOT_OBJECT == 0).then_some(Writable {
            space: self,
            index: k.key(),
            at: link as usize,
        })
    }

    /// The live object at raw index `i` (the indirection table holds indices), whatever its
    /// generation, to write; `None` for a forwarder or a vacant index.
    #[inline(always)]
    pub(crate) fn writable_at_index(&mut self, i: u32) -> Option<Writable<'_>> {
        let link = self.keys.link_at(i)?;
        (link & NOT_OBJECT == 0).then_some(Writable {
            space: self,
            index: i,
            at: link as usize,
        })
    }

    /// Exchanges the bodies of two distinct live objects (two-way become): each key now names
    /// the other's block. Answers false, changing nothing, unless both are live objects.
    pub(crate) fn swap(&mut self, a: PrivateKey, b: PrivateKey) -> bool {
        let (Some(la), Some(lb)) = (self.keys.link(slab_key(a)), self.keys.link(slab_key(b)))
        else {
            return false;
        };
        if la == lb || (la | lb) & NOT_OBJECT != 0 {
            return false;
        }
        self.keys.relink(a.key(), lb);
        self.keys.relink(b.key(), la);
        true
    }

    /// Gives stub `stub` the body of object `from` (a fault-in: the object read back from
    /// its segment takes the stub's identity) and makes `from` a forwarder to `stub`, so that
    /// references to `from` (from objects faulted in with it) lead to the stub's key. Answers
    /// false, changing nothing, unless `stub` is a live stub and `from` a live object.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the forwarder's word cannot be had; nothing changes.
    pub(crate) fn fill(&mut self, stub: PrivateKey, from: PrivateKey) -> Result<bool> {
        let (Some(ls), Some(lf)) = (
            self.keys.link(slab_key(stub)),
            self.keys.link(slab_key(from)),
        ) else {
            return Ok(false);
        };
        if ls & NOT_OBJECT != STUB || lf & NOT_OBJECT != 0 {
            return Ok(false);
        }
        let segment = self.words[(ls & !NOT_OBJECT) as usize].get().bits();
        let fwd = self.append_word(Word::private(stub), FORWARDER)?;
        self.count_stub(segment, false);
        // The stub's word is dead now.
        self.dead_words += 1;
        self.keys.relink(stub.key(), lf);
        self.keys.relink(from.key(), fwd);
        self.forwarders += 1;
        Ok(true)
    }

    /// The current key of raw index `i`, if it is live.
    pub(crate) fn key_of(&self, i: u32) -> Option<PrivateKey> {
        self.keys.key_at(i).map(private_key)
    }

    /// Frees the entry `k` names, retires its generation and answers what it was charged.
    pub(crate) fn remove(&mut self, k: PrivateKey) -> Option<u64> {
        let charged = match self.get(k)? {
            State::Forwarded(_) => FORWARDER_COST,
            State::Stub(segment) => {
                self.count_stub(segment, false);
                FORWARDER_COST
            }
            State::Object(o) => cost(o.size()),
        };
        let link = self.keys.remove(slab_key(k))?;
        if link & NOT_OBJECT != 0 {
            self.forwarders -= usize::from(link & FORWARDER != 0);
            self.dead_words += 1;
        } else if let Some(o) = self.object_at(link as usize) {
            let size = o.size();
            self.dead_words += block_words(size.slots, size.bytes);
            self.dead_bytes += size.bytes;
        }
        Some(charged)
    }

    /// Compacts the arenas if dead words pass half of them, and gives back what the arenas
    /// hold beyond a quarter of slack (after a collection). Time: O(keys ever used + live
    /// words) when it compacts.
    pub(crate) fn tidy(&mut self) {
        if self.dead_words * 2 > self.words.len() || self.dead_bytes * 2 > self.bytes.len() {
            let _ = self.compact();
        }
    }

    /// Copies every live block, in key order, into fresh arenas of the live size and relinks
    /// it. No key changes.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`] if the fresh arenas cannot be had; nothing changes.
    fn compact(&mut self) -> Result<()> {
        let live_words = self.words.len() - self.dead_words;
        let live_bytes = self.bytes.len() - self.dead_bytes;
        let mut words: Vec<Cell<Word>> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let oom = |n: usize| Error::OutOfMemory {
            bytes: u64::try_from(n).unwrap_or(u64::MAX),
        };
        words
            .try_reserve_exact(live_words + live_words / 4)
            .map_err(|_| oom(live_words * 8))?;
        bytes
            .try_reserve_exact(live_bytes + live_bytes / 4)
            .map_err(|_| oom(live_bytes))?;
        let mut moved = Vec::new();
        moved
            .try_reserve_exact(self.keys.len())
            .map_err(|_| oom(self.keys.len() * 8))?;
        for (k, link) in self.keys.iter() {
            let at = (link & !NOT_OBJECT) as usize;
            // Lossless: the fresh arena is no longer than the old one.
            let new_at = u32::try_from(words.len()).unwrap_or(0);
            if link & NOT_OBJECT != 0 {
                words.push(self.words[at].clone());
                moved.push((k.index(), new_at | (link & NOT_OBJECT)));
                continue;
            }
            let size = self.words[at + layout::SIZE_WORD].get().bits();
            let (slots, n) = (layout::slot_count(size), layout::byte_count(size));
            words.extend_from_slice(&self.words[at..at + HEADER_WORDS + slots]);
            if n != 0 {
                let start = usize::try_from(self.words[at + HEADER_WORDS + slots].get().bits())
                    .unwrap_or(0);
                words.push(Cell::new(Word::from_bits(bytes.len() as u64)));
                bytes.extend_from_slice(&self.bytes[start..start + n]);
            }
            moved.push((k.index(), new_at));
        }
        for (i, link) in moved {
            self.keys.relink(i, link);
        }
        self.words = words;
        self.bytes = bytes;
        self.dead_words = 0;
        self.dead_bytes = 0;
        Ok(())
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// One past the largest key ever handed out.
    pub(crate) fn key_bound(&self) -> usize {
        self.keys.bound()
    }

    /// Heap bytes held: the key records, both arenas and the count of root stubs per
    /// segment (a map's slot and control byte per place).
    pub(crate) fn memory_bytes(&self) -> usize {
        let stubs = self.stubs.as_ref().map_or(0, |c| {
            std::mem::size_of::<rustc_hash::FxHashMap<u64, usize>>()
                + c.capacity() * (std::mem::size_of::<(u64, usize)>() + 1)
        });
        self.keys.memory_bytes() + self.words.capacity() * 8 + self.bytes.capacity() + stubs
    }
}

/// Room in `v` for `n` more elements: a quarter more than it holds at least, so that growing
/// costs O(1) amortized and slack stays under a quarter.
fn grow<T>(v: &mut Vec<T>, n: usize) -> Result<()> {
    if v.capacity() - v.len() >= n {
        return Ok(());
    }
    let extra = n.max(v.len() / 4).max(64);
    v.try_reserve_exact(extra).map_err(|_| Error::OutOfMemory {
        bytes: u64::try_from(extra.saturating_mul(std::mem::size_of::<T>())).unwrap_or(u64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(slots: &[u64], bytes: &[u8], hash: u32) -> Entry {
        Entry::Object(Body {
            class: Word::from_bits(8),
            format: if bytes.is_empty() {
                Format::Pointers
            } else {
                Format::Bytes
            },
            hash,
            aux: 0,
            slots: slots.iter().map(|&w| Word::from_bits(w)).collect(),
            bytes: bytes.into(),
        })
    }

    fn observe(s: &Space) -> Vec<String> {
        s.iter()
            .map(|(k, st)| match st {
                State::Object(o) => format!(
                    "{k:?} {:?} {:?} {} {:?} {:?}",
                    o.class(),
                    o.format(),
                    o.hash(),
                    o.slots().iter().map(Cell::get).collect::<Vec<_>>(),
                    o.bytes()
                ),
                State::Forwarded(t) => format!("{k:?} -> {t:?}"),
                State::Stub(seg) => format!("{k:?} stub of {seg}"),
            })
            .collect()
    }

    #[test]
    fn objects_read_back_and_survive_compaction() {
        let mut s = Space::default();
        let mut keys = Vec::new();
        for i in 0..200u32 {
            let bytes: Vec<u8> = (0..(i % 7) as u8).collect();
            let slots: Vec<u64> = (0..u64::from(i % 5)).map(|j| 4 * j + 8).collect();
            keys.push(s.insert(body(&slots, &bytes, i)).unwrap());
        }
        let o = s.object(keys[13]).unwrap();
        assert_eq!(o.hash(), 13);
        assert_eq!(o.size(), ObjectSize { slots: 3, bytes: 6 });
        assert_eq!(o.bytes(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(o.slot(2).unwrap().get(), Word::from_bits(16));
        assert!(o.slot(3).is_none());
        // Write, forward, swap and free; then compact and see the same.
        let mut w = s.writable(keys[6]).unwrap();
        *w.slot_mut(0).unwrap() = Word::from_bits(99 << 3);
        w.bytes_mut()[5] = 42;
        w.set_class(Word::from_bits(16));
        assert!(s.swap(keys[1], keys[2]));
        assert!(!s.swap(keys[1], keys[1]));
        s.writable(keys[3]).unwrap().forward(Word::from_bits(24));
        s.writable(keys[4]).unwrap().stub(5);
        assert!(s.object(keys[4]).is_none());
        assert_eq!((s.stubs_of(5), s.stub_count()), (1, 1));
        assert!(s.has_forwarders());
        assert!(s.writable(keys[3]).is_none());
        // A forwarder's and a stub's links lie past the arena: neither reads as an object,
        // by key or by index.
        assert!(s.object(keys[3]).is_none());
        assert!(s.object_at_index(keys[3].key()).is_none());
        assert!(s.object_at_index(keys[4].key()).is_none());
        assert!(s.object_at_index(keys[5].key()).is_some());
        assert!(!s.swap(keys[3], keys[4]));
        for (_, &k) in keys.iter().enumerate().skip(20).filter(|(j, _)| j % 5 != 0) {
            assert!(s.remove(k).is_some());
            assert!(s.get(k).is_none());
        }
        let before = observe(&s);
        let held = s.words.len();
        s.tidy();
        assert!(s.words.len() < held, "compacted");
        assert_eq!(observe(&s), before);
        assert_eq!(s.object(keys[6]).unwrap().bytes()[5], 42);
        assert_eq!(s.stubs_of(5), 1);
        assert_eq!(s.remove(keys[4]), Some(FORWARDER_COST));
        assert_eq!(s.stub_count(), 0);
        // Keys freed before compaction stay refused; new ones take their indices.
        let k = s.insert(body(&[8], &[], 7)).unwrap();
        assert!(s.get(keys[21]).is_none());
        assert_eq!(s.object(k).unwrap().hash(), 7);
    }

    #[test]
    fn a_slot_is_bounded_by_its_object_whatever_the_index() {
        let mut s = Space::default();
        let k = s.insert(body(&[8, 16, 24], &[], 1)).unwrap();
        let fwd = s.insert(body(&[8], &[], 3)).unwrap();
        let stub = s.insert(body(&[8], &[], 4)).unwrap();
        s.writable(fwd).unwrap().forward(Word::from_bits(24));
        s.writable(stub).unwrap().stub(9);
        // The last block of the arena: its one slot is the arena's last word.
        let last = s.insert(body(&[32], &[], 2)).unwrap();
        let link = |s: &Space, key| s.keys.link(slab_key(key)).unwrap() as usize;
        assert_eq!(link(&s, last) + HEADER_WORDS + 1, s.words.len());
        // Indices whose sum with the object's offset wraps to a small word of the arena
        // (to word 0 or 1): refused before any sum is made.
        let at = link(&s, k) + HEADER_WORDS;
        let wrapping = [0usize.wrapping_sub(at), 1usize.wrapping_sub(at)];
        // In range, by key and through the witness, agreeing with the object's own reads.
        for i in 0..3 {
            let want = s.object(k).unwrap().slot(i).unwrap().get();
            assert_eq!(s.slot_of(k, i).unwrap().get(), want);
            assert_eq!(*s.writable(k).unwrap().slot_mut(i).unwrap(), want);
            assert_eq!(*s.slot_mut_of(k, i).unwrap(), want);
            assert_eq!(s.slot_at_index(k.key(), i).unwrap().get(), want);
            assert_eq!(s.view().slot_of(k, i).unwrap().get(), want);
        }
        // Past the object (into the next one's words), past the arena, an index whose low 32
        // bits name a slot in range (2^32, 2^32 + 1), or one that would wrap the
        // arithmetic: refused, never another object's word.
        let mut past = vec![
            3,
            4,
            usize::from(u16::MAX),
            1 << 32,
            (1 << 32) + 1,
            usize::MAX,
        ];
        past.extend(wrapping);
        for i in past {
            assert!(s.slot_of(k, i).is_none(), "{i}");
            assert!(s.writable(k).unwrap().slot_mut(i).is_none(), "{i}");
            assert!(s.slot_mut_of(k, i).is_none(), "{i}");
            assert!(s.slot_at_index(k.key(), i).is_none(), "{i}");
            assert!(s.view().slot_of(k, i).is_none(), "{i}");
        }
        assert_eq!(s.slot_of(last, 0).unwrap().get(), Word::from_bits(32));
        assert_eq!(
            *s.writable(last).unwrap().slot_mut(0).unwrap(),
            Word::from_bits(32)
        );
        assert_eq!(*s.slot_mut_of(last, 0).unwrap(), Word::from_bits(32));
        assert!(s.slot_of(last, 1).is_none());
        assert!(s.writable(last).unwrap().slot_mut(1).is_none());
        assert!(s.slot_mut_of(last, 1).is_none());
        assert_eq!(
            s.view().slot_of(last, 0).unwrap().get(),
            Word::from_bits(32)
        );
        assert!(s.view().slot_of(last, 1).is_none());
        // A forwarder's and a stub's links lie past the arena, even with an index that
        // would wrap them back into it; a freed key is no key.
        for key in [fwd, stub] {
            let at = link(&s, key);
            assert!(at >= s.words.len());
            let back = usize::MAX - (at + 2);
            for i in [0, 1, back, back + 1, usize::MAX] {
                assert!(s.slot_of(key, i).is_none(), "{i}");
                assert!(s.slot_mut_of(key, i).is_none(), "{i}");
                assert!(s.slot_at_index(key.key(), i).is_none(), "{i}");
                assert!(s.view().slot_of(key, i).is_none(), "{i}");
            }
        }
        // A write through the key reaches its own slot and no other word.
        let before: Vec<u64> = s.words.iter().map(|w| w.get().bits()).collect();
        *s.slot_mut_of(k, 2).unwrap() = Word::from_bits(40);
        let after: Vec<u64> = s.words.iter().map(|w| w.get().bits()).collect();
        let changed: Vec<usize> = (0..before.len())
            .filter(|&j| before[j] != after[j])
            .collect();
        assert_eq!(changed, [at + 2]);
        assert_eq!(
            s.object(k).unwrap().slot(2).unwrap().get(),
            Word::from_bits(40)
        );
        assert!(s.remove(last).is_some());
        assert!(s.slot_of(last, 0).is_none());
        assert!(s.slot_mut_of(last, 0).is_none());
        assert!(s.slot_at_index(last.key(), 0).is_none());
        assert!(s.view().slot_of(last, 0).is_none());
        assert!(!s.view().is_live(last) && s.view().is_live(k));
    }

    #[test]
    fn parts_round_trip_and_forwarders_are_counted() {
        let s = Space::from_parts(
            [
                (2, body(&[8, 16], b"ab", 5)),
                (0, Entry::Forwarded(Word::from_bits(8))),
                (3, Entry::Stub(77)),
            ],
            4,
            |i| i,
        )
        .unwrap();
        assert!(s.has_forwarders());
        assert_eq!(s.len(), 3);
        assert!(matches!(s.get(s.key_of(3).unwrap()), Some(State::Stub(77))));
        assert_eq!(s.stubs_of(77), 1);
        assert!(s.object(s.key_of(3).unwrap()).is_none());
        assert!(s.object(s.key_of(0).unwrap()).is_none());
        assert_eq!(s.gens().collect::<Vec<_>>(), [0, 1, 2, 3]);
        let k = s.key_of(2).unwrap();
        assert_eq!(s.object(k).unwrap().bytes(), b"ab");
        assert_eq!(
            s.get(s.key_of(0).unwrap()).unwrap().target(),
            Some(Word::from_bits(8))
        );
        assert!(Space::from_parts([(4, body(&[], &[], 0))], 4, |_| 0).is_err());
    }

    #[test]
    fn charges_follow_the_layout() {
        assert_eq!(cost(ObjectSize { slots: 0, bytes: 0 }), 32);
        assert_eq!(cost(ObjectSize { slots: 2, bytes: 0 }), 48);
        assert_eq!(cost(ObjectSize { slots: 0, bytes: 5 }), 45);
        let mut s = Space::default();
        let k = s.insert(body(&[8, 8], b"xyz", 0)).unwrap();
        assert_eq!(s.remove(k), Some(cost(ObjectSize { slots: 2, bytes: 3 })));
    }
}
