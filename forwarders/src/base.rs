//! A frozen base heap together with its diverted marks.

use crate::DivertMarks;
use crate::version::Committed;
use cowheap_heap::{
    BaseHeap, Builder, Error as HeapError, Fingerprint, Format, ObjectIndex, ObjectSize,
    ObjectView, Result, Word,
};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The identity of a [`Base`] within a process. Invariant: never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaseId(u64);

impl BaseId {
    /// The id's number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What tenants fork from: a frozen heap and the marks of the objects tenants diverted, and
/// for a committed version, the layers of objects its commits changed or added
/// ([`crate::version`]).
///
/// The heap is never written. The marks are the only shared state tenants write: one word per
/// object, its header offset and a diverted bit set once ([`crate::marks`]). The versions of
/// one root share its heap and its marks. `Base` is `Send + Sync`; share it as `Arc<Base>`.
///
/// ```
/// use cowheap_forwarders::{Base, Committed};
/// use cowheap_heap::{synth, Word};
///
/// let v0 = Base::new(synth::image(100, 1));
/// let g = v0.heap().index_of(v0.heap().root("Smalltalk").unwrap()).unwrap();
/// let mut body = Committed::from_view(&v0.object(g).unwrap());
/// let seven = Word::int(7).unwrap();
/// body.slots[0] = seven;
/// let v1 = v0.next_version(vec![(g.as_u32(), body)], v0.len()).unwrap();
/// assert_eq!(v1.version(), 1);
/// assert_eq!(v1.slot_word(g, 0).unwrap(), seven); // the new version's body
/// assert_ne!(v0.slot_word(g, 0).unwrap(), seven); // the old one keeps its own
/// ```
#[derive(Debug)]
pub struct Base {
    id: BaseId,
    heap: Arc<BaseHeap>,
    marks: DivertMarks,
    /// The version this base is: 0 for a heap made or opened, its parent's plus one for a
    /// commit, kept by [`Base::flatten`].
    version: u64,
    /// The version below this one, for a committed version.
    parent: Option<Arc<Base>>,
    /// The objects this version changed or added, by index (empty for a root).
    layer: FxHashMap<u32, Committed>,
    /// Objects in this version: the heap's, then those commits added.
    len: usize,
    /// Layers from this version down to its heap.
    depth: usize,
    fingerprint: OnceLock<Fingerprint>,
    /// For a root: the fingerprint of the heap its history started from (its own heap's,
    /// computed on first use, or for a flattened version the history's).
    origin: OnceLock<Fingerprint>,
    /// For a committed version: the root of its lineage, whose origin is its origin.
    root: Option<Arc<Base>>,
}

impl Drop for Base {
    /// Drops a chain of versions no one else holds one by one, not by recursion (a chain may
    /// be longer than a thread's stack is deep).
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(p) = next {
            match Arc::try_unwrap(p) {
                Ok(mut b) => next = b.parent.take(),
                Err(_) => break,
            }
        }
    }
}

impl Base {
    /// Wraps a frozen heap with clear marks, as version 0. Time: O(objects), to fill the
    /// marks with the heap's header offsets (8 bytes per object).
    pub fn new(heap: BaseHeap) -> Arc<Base> {
        Base::root(heap, 0, None)
    }

    fn next_id() -> BaseId {
        // Relaxed: the counter only has to hand out distinct numbers.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        BaseId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    fn root(heap: BaseHeap, version: u64, of: Option<&Base>) -> Arc<Base> {
        let (fingerprint, origin) = (OnceLock::new(), OnceLock::new());
        if let Some(of) = of {
            let _ = fingerprint.set(of.fingerprint());
            let _ = origin.set(of.origin());
        }
        let marks = DivertMarks::new(heap.header_offsets());
        let len = heap.len();
        Arc::new(Base {
            id: Base::next_id(),
            heap: Arc::new(heap),
            marks,
            version,
            parent: None,
            layer: FxHashMap::default(),
            len,
            depth: 0,
            fingerprint,
            origin,
            root: None,
        })
    }

    /// This base's id.
    pub fn id(&self) -> BaseId {
        self.id
    }

    /// The frozen heap under every version of this lineage. What a version changed is not
    /// in it: read objects through [`Base::object`] and its siblings, or through a tenant.
    #[inline]
    pub fn heap(&self) -> &BaseHeap {
        &self.heap
    }

    /// The version's content fingerprint: what tenant snapshots are bound to. For a heap made
    /// or opened, [`BaseHeap::fingerprint`]; for a committed version, a digest of its parent's
    /// fingerprint, its number and its layer, computed on first use (O(layer), plus the
    /// parents' on their first use); a flattened version keeps the fingerprint of the version
    /// it was made from.
    pub fn fingerprint(&self) -> Fingerprint {
        if let Some(f) = self.fingerprint.get() {
            return *f;
        }
        // The versions whose fingerprints are not known yet, newest first, then each from its
        // parent's, oldest first: no recursion, however long the chain.
        let mut pending = vec![self];
        let mut known = loop {
            let b = pending[pending.len() - 1];
            match &b.parent {
                None => {
                    pending.pop();
                    break *b.fingerprint.get_or_init(|| b.heap.fingerprint());
                }
                Some(p) => match p.fingerprint.get() {
                    Some(f) => break *f,
                    None => pending.push(p),
                },
            }
        };
        while let Some(b) = pending.pop() {
            known = *b.fingerprint.get_or_init(|| b.layer_fingerprint(known));
        }
        known
    }

    /// The fingerprint of this committed version, given its parent's.
    fn layer_fingerprint(&self, parent: Fingerprint) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(b"cowheap version\0");
        h.update(&parent.0);
        h.update(&self.version.to_le_bytes());
        h.update(&(self.len as u64).to_le_bytes());
        let mut keys: Vec<u32> = self.layer.keys().copied().collect();
        keys.sort_unstable();
        for x in keys {
            let c = &self.layer[&x];
            h.update(&x.to_le_bytes());
            h.update(&c.class.bits().to_le_bytes());
            h.update(&[c.format as u8]);
            h.update(&c.hash.to_le_bytes());
            h.update(&c.aux.to_le_bytes());
            h.update(&(c.slots.len() as u64).to_le_bytes());
            for w in &c.slots {
                h.update(&w.bits().to_le_bytes());
            }
            h.update(&(c.bytes.len() as u64).to_le_bytes());
            h.update(&c.bytes);
        }
        Fingerprint(*h.finalize().as_bytes())
    }

    /// The shared diverted marks.
    pub fn marks(&self) -> &DivertMarks {
        &self.marks
    }

    /// This version's number: 0 for a heap made or opened, one more than its parent's for a
    /// commit.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The version this one was committed over, if it was.
    pub fn parent(&self) -> Option<&Arc<Base>> {
        self.parent.as_ref()
    }

    /// True if `fp` is this version's fingerprint or that of a version it was committed
    /// over (its parent's, and theirs): every object of that version is at the same index
    /// in this one, changed or not ([`Base::descends_from`] by fingerprint). Time:
    /// O(versions in the chain).
    pub fn descends_from_fingerprint(&self, fp: Fingerprint) -> bool {
        let mut at = Some(self);
        while let Some(v) = at {
            if v.fingerprint() == fp {
                return true;
            }
            at = v.parent().map(|p| &**p);
        }
        false
    }

    /// Layers between this version and its heap: how many lookups a read of an object some
    /// version changed may take. 0 for a heap made, opened or flattened.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// True if `other` is this version or one below it, over the same heap.
    pub fn descends_from(&self, other: &Base) -> bool {
        let mut b = self;
        loop {
            if b.id == other.id {
                return true;
            }
            match &b.parent {
                Some(p) => b = p,
                None => return false,
            }
        }
    }

    /// The indices of the objects this version itself changed or added (not its parents').
    pub fn changed_here(&self) -> impl Iterator<Item = ObjectIndex> + '_ {
        self.layer.keys().map(|&x| ObjectIndex::from_u32(x))
    }

    /// Number of objects in this version: the heap's and those its commits added.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the version holds no objects (a valid base always holds nil, so never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body a version up to this one committed for object `x`, newest first; `None` if
    /// none did (the heap's body stands). Time: one hash lookup per layer walked.
    pub fn committed(&self, x: u32) -> Option<&Committed> {
        let mut b = self;
        loop {
            if let Some(c) = b.layer.get(&x) {
                return Some(c);
            }
            b = b.parent.as_deref()?;
        }
    }

    /// Object `x` as this version has it. Time: O(1) for an object no version changed (its
    /// mark says so), else one lookup per layer walked.
    pub fn object(&self, x: ObjectIndex) -> Result<ObjectView<'_>> {
        match self.changed(x)? {
            Some(c) => Ok(c.view()),
            None => self.heap.object(x),
        }
    }

    /// Where this version keeps `x`: `Some` for a committed body, `None` for the heap's.
    #[inline]
    fn changed(&self, x: ObjectIndex) -> Result<Option<&Committed>> {
        if x.get() >= self.len {
            return Err(HeapError::NoSuchObject {
                index: x.get() as u64,
                len: self.len as u64,
            });
        }
        if self.depth == 0 || (x.get() < self.heap.len() && !self.marks.is_committed(x.as_u32())) {
            return Ok(None);
        }
        Ok(self.committed(x.as_u32()))
    }

    /// Pointer slot `i` of object `x` in this version.
    pub fn slot_word(&self, x: ObjectIndex, i: usize) -> Result<Word> {
        match self.changed(x)? {
            Some(c) => c
                .slots
                .get(i)
                .copied()
                .ok_or_else(|| c.format.slot_error(i, c.slots.len())),
            None => self.heap.slot_word(x, i),
        }
    }

    /// The class of object `x` in this version.
    pub fn class_word(&self, x: ObjectIndex) -> Result<Word> {
        Ok(self.object(x)?.class)
    }

    /// The identity hash of object `x` in this version.
    pub fn hash(&self, x: ObjectIndex) -> Result<u32> {
        Ok(self.object(x)?.hash)
    }

    /// The size of object `x` in this version.
    pub fn size(&self, x: ObjectIndex) -> Result<ObjectSize> {
        Ok(self.object(x)?.size())
    }

    /// The format of object `x` in this version.
    pub fn format(&self, x: ObjectIndex) -> Result<Format> {
        Ok(self.object(x)?.format)
    }

    /// The raw bytes of object `x` in this version.
    pub fn bytes(&self, x: ObjectIndex) -> Result<&[u8]> {
        Ok(self.object(x)?.bytes)
    }

    /// Checks that `objects` and `len` make a version over this one ([`Base::next_version`]
    /// states the rules), changing nothing. Time: O(objects given and their slots).
    ///
    /// # Errors
    /// As [`Base::next_version`].
    pub fn check_layer(&self, objects: &[(u32, Committed)], len: usize) -> Result<()> {
        if len as u64 > 1 << 32 {
            return Err(HeapError::TooLarge("more objects than references can name"));
        }
        if len < self.len {
            return Err(HeapError::Corrupt(
                "a version with fewer objects than its parent",
            ));
        }
        self.version
            .checked_add(1)
            .ok_or(HeapError::TooLarge("2^64 versions"))?;
        let no_such = |x: u32| HeapError::NoSuchObject {
            index: u64::from(x),
            len: len as u64,
        };
        let names = |w: Word| match w.as_base() {
            Some(y) => y.get() < len,
            None => w.is_immediate(),
        };
        let mut seen = rustc_hash::FxHashSet::default();
        seen.try_reserve(objects.len())
            .map_err(|_| refused::<u32>(objects.len()))?;
        for (x, c) in objects {
            if *x as usize >= len {
                return Err(no_such(*x));
            }
            if !seen.insert(*x) {
                return Err(HeapError::Corrupt("an object twice in one version"));
            }
            c.format.check(c.size())?;
            if c.aux >> cowheap_heap::AUX_BITS != 0 {
                return Err(HeapError::TooLarge("auxiliary bits wider than 24"));
            }
            if !c.class.is_base() || !names(c.class) {
                return Err(HeapError::InvalidWord(c.class));
            }
            if let Some(&w) = c.slots.iter().find(|&&w| !names(w)) {
                return Err(HeapError::InvalidWord(w));
            }
        }
        if let Some(x) = (self.len..len).find(|&x| !seen.contains(&(x as u32))) {
            return Err(no_such(x as u32));
        }
        Ok(())
    }

    /// A new version over this one: `objects` are the bodies of the objects it changes and of
    /// those it adds, which take the indices from [`Base::len`] up to `len`. The heap and
    /// marks are shared, this version is untouched (its tenants keep seeing exactly what they
    /// saw), and the changed objects' committed bits are set, which sends every reader of
    /// them to its layers. Time: O(objects given), never O(base).
    ///
    /// Hidden from the docs, as `IndirectionTable::divert` is: a committed bit is never
    /// cleared and costs every reader of its object a lookup, so versions are made by the
    /// tenants crate's `Repository`, which makes one only to publish it.
    ///
    /// # Errors
    /// [`HeapError::NoSuchObject`] for an index at or past `len`, or an added index left
    /// without a body; [`HeapError::Corrupt`] for fewer objects than this version has, or an
    /// object given twice; [`HeapError::BadLayout`] for a body its format cannot hold;
    /// [`HeapError::InvalidWord`] for a class or slot that is neither an immediate nor a
    /// reference to an object of the new version (a private reference included);
    /// [`HeapError::TooLarge`] past 2^32 objects or 2^64 versions, or auxiliary bits wider
    /// than 24; [`HeapError::OutOfMemory`] if the allocator refuses the layer's memory.
    /// Nothing changes on any error.
    #[doc(hidden)]
    pub fn next_version(
        self: &Arc<Base>,
        objects: Vec<(u32, Committed)>,
        len: usize,
    ) -> Result<Arc<Base>> {
        self.check_layer(&objects, len)?;
        let mut layer = FxHashMap::default();
        layer
            .try_reserve(objects.len())
            .map_err(|_| refused::<(u32, Committed)>(objects.len()))?;
        layer.extend(objects);
        for &x in layer.keys() {
            self.marks.mark_committed(x);
        }
        Ok(Arc::new(Base {
            id: Base::next_id(),
            heap: self.heap.clone(),
            marks: self.marks.clone(),
            version: self.version + 1,
            parent: Some(self.clone()),
            layer,
            len,
            depth: self.depth + 1,
            fingerprint: OnceLock::new(),
            origin: OnceLock::new(),
            root: Some(self.root.clone().unwrap_or_else(|| self.clone())),
        }))
    }

    /// This version as a heap of its own, every layer folded in: the same objects at the same
    /// indices with the same hashes, nil, roots and classes of immediates, so references and
    /// snapshots' base indices mean what they meant. Time: O(objects in the version); meant
    /// for a background thread. Make a [`Base`] of it with [`Base::flattened`].
    ///
    /// # Errors
    /// What the heap's builder refuses (a version too large to build);
    /// [`HeapError::OutOfMemory`] if the allocator refuses memory the new heap needs, which
    /// is reserved fallibly throughout.
    pub fn flatten(&self) -> Result<BaseHeap> {
        let mut b = Builder::new();
        let nil = self.heap.index_of(self.heap.nil())?;
        for x in (0..self.len).filter_map(ObjectIndex::new) {
            let view = self.object(x)?;
            let w = b.add(
                view.class,
                view.format,
                try_copy(view.slots)?,
                try_copy(view.bytes)?,
            )?;
            if x == nil {
                b.set_nil(w)?;
            }
            b.set_hash(w, view.hash)?;
            b.set_aux(w, view.aux)?;
        }
        let word = |v: Option<cowheap_heap::Value>| v.map(|v| v.word());
        b.set_immediate_classes(word(self.heap.int_class()), word(self.heap.char_class()));
        b.set_float_class(word(self.heap.float_class()));
        for r in self.heap.roots() {
            b.add_root(&r.name, r.value)?;
        }
        b.freeze()
    }

    /// A root base of `heap` that takes the place of version `of`, from which
    /// [`Base::flatten`] made it: the same number, [`Base::origin`] and
    /// [`Base::fingerprint`] (so a tenant snapshot taken on either restores on the other;
    /// the indices are the same). Its marks are new and clear. Time: that of `of`'s
    /// fingerprint, if not known yet.
    pub fn flattened(heap: BaseHeap, of: &Base) -> Arc<Base> {
        Base::root(heap, of.version, Some(of))
    }

    /// The fingerprint of the heap this version's history started from (version 0): what
    /// names the history across processes, whether a version is layered or flattened.
    /// Time: O(1), or for a heap made in memory one fingerprint of it on first use.
    pub fn origin(&self) -> Fingerprint {
        match &self.root {
            Some(root) => root.origin(),
            None => *self.origin.get_or_init(|| self.heap.fingerprint()),
        }
    }

    /// Bytes of memory the heap, its marks and this version's layers occupy.
    pub fn memory_bytes(&self) -> usize {
        let mut n = self.heap.memory_bytes() + self.marks.memory_bytes();
        let mut b = Some(self);
        while let Some(v) = b {
            n += v.layer.capacity() * (std::mem::size_of::<(u32, Committed)>() + 1)
                + v.layer
                    .values()
                    .map(|c| c.memory_bytes() - std::mem::size_of::<Committed>())
                    .sum::<usize>();
            b = v.parent.as_deref();
        }
        n
    }
}

/// `items` copied into a vector whose memory is reserved fallibly.
fn try_copy<T: Copy>(items: &[T]) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(items.len())
        .map_err(|_| refused::<T>(items.len()))?;
    v.extend_from_slice(items);
    Ok(v)
}

/// [`HeapError::OutOfMemory`] for `n` items of `T`.
fn refused<T>(n: usize) -> HeapError {
    HeapError::OutOfMemory {
        bytes: u64::try_from(n.saturating_mul(size_of::<T>())).unwrap_or(u64::MAX),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A chain of 200,000 versions on a thread with a 256 KiB stack: its fingerprint, its
    /// origin and its drop need no deeper stack than a short one's.
    #[test]
    fn long_chains_are_walked_and_dropped_without_recursion() {
        let depth = 200_000;
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let root = Base::new(cowheap_heap::synth::image(50, 2));
                let g = root
                    .heap()
                    .index_of(root.heap().root("Smalltalk").unwrap())
                    .unwrap();
                let mut v = root.clone();
                for i in 0..depth {
                    let mut body = Committed::from_view(&v.object(g).unwrap());
                    if !body.slots.is_empty() {
                        body.slots[0] = Word::int(i).unwrap();
                    }
                    v = v.next_version(vec![(g.as_u32(), body)], v.len()).unwrap();
                }
                assert_eq!(v.version(), depth as u64);
                assert_eq!(v.depth(), depth as usize);
                assert_eq!(v.origin(), root.fingerprint());
                let f = v.fingerprint();
                assert_ne!(f, root.fingerprint());
                assert_eq!(v.fingerprint(), f);
                drop(v);
                assert_eq!(Arc::strong_count(&root), 1, "the whole chain was freed");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn bases_get_distinct_ids_and_one_bit_per_object() {
        let a = Base::new(cowheap_heap::synth::image(500, 1));
        let b = Base::new(cowheap_heap::synth::image(500, 1));
        assert_ne!(a.id(), b.id());
        assert_eq!(a.marks().memory_bytes(), a.heap().len() * 8);
        fn check<T: Send + Sync>() {}
        check::<Base>();
    }
}
