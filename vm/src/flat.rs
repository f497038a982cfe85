//! A plain flat heap: an imported image decoded into one owned, writable heap, no tenants.
//!
//! It is the baseline the interpreter on a tenant is measured against, and the oracle the
//! same programs are checked against. Every object is a [`FlatObject`] in one `Vec`; a
//! reference is the object's index (a base word, so references of the imported image keep
//! their meaning), new objects are pushed at the end. Identity is word equality. There is no
//! copy-on-write and no forwarding. [`ObjectMemory::collect`] marks from the roots, the
//! interpreter's registers and every object of the image (which, like a base, is never
//! freed) and puts the unreachable objects allocated since onto a free list that allocation
//! reuses: O(heap), where a tenant's collection is O(private). A value naming a freed object
//! is refused ([`cowheap_tenants::Error::Collected`]) until its index is reused.

use crate::memory::{Collected, MemResult, ObjectMemory, WeakSlots};
use cowheap_heap::{BaseHeap, Error as HeapError, Format, ObjectIndex, ObjectSize, Value, Word};
use cowheap_tenants::Header;
use std::collections::HashMap;

/// One object of a [`FlatHeap`].
#[derive(Clone, Debug)]
struct FlatObject {
    class: Word,
    format: Format,
    hash: u32,
    slots: Box<[Word]>,
    bytes: Box<[u8]>,
    /// False once collected (and until the index is reused).
    live: bool,
    /// A hidden Spur object of the imported image (free lists, hidden roots, class-table
    /// pages), or an object a one-way become forwarded (every reference to it now leads to
    /// its target): left out of the walk of every object, as a Spur VM leaves both out and
    /// a tenant leaves out the objects it forwarded.
    hidden: bool,
}

impl FlatObject {
    /// The bytes an object is charged: a header and its slots and bytes.
    fn cost(&self) -> u64 {
        16 + 8 * self.slots.len() as u64 + self.bytes.len() as u64
    }
}

/// An owned, writable heap holding a copy of every object of a base heap.
///
/// ```
/// use cowheap_heap::{Builder, Format, ObjectSize, Value};
/// use cowheap_vm::{FlatHeap, ObjectMemory};
///
/// let mut b = Builder::new();
/// let nil = b.add_nil();
/// let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
/// b.add_root("class", class).unwrap();
/// let base = b.freeze().unwrap();
/// let mut flat = FlatHeap::from_base(&base);
/// let class = flat.root("class").unwrap();
/// let o = flat.alloc(class, Format::Pointers, ObjectSize { slots: 2, bytes: 0 }).unwrap();
/// flat.set_slot(o, 1, Value::int(7)).unwrap();
/// assert_eq!(flat.slot(o, 1).unwrap().as_int(), Some(7));
/// assert!(flat.identical(flat.slot(o, 0).unwrap(), base.nil()).unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct FlatHeap {
    objects: Vec<FlatObject>,
    roots: HashMap<String, Word>,
    nil: Word,
    int_class: Option<Word>,
    char_class: Option<Word>,
    float_class: Option<Word>,
    allocations: u64,
    allocated_bytes: u64,
    /// Objects of the image: never freed.
    imported: usize,
    /// Indices of freed objects, reused by allocation.
    free: Vec<u32>,
    /// The width of the identity hashes of the objects it makes: its base's
    /// ([`cowheap_heap::BaseHeap::hash_bits`]), as a tenant's.
    hash_bits: u32,
}

impl FlatHeap {
    /// A flat heap holding a copy of every object and root of `base`. Time: O(size of base).
    ///
    /// An object of a base opened without verification whose header does not decode keeps
    /// its index, as a dead object: using it is an error (`Collected`), as reading it from
    /// the base is, and every other reference still names its own object.
    pub fn from_base(base: &BaseHeap) -> FlatHeap {
        let objects: Vec<FlatObject> = base
            .indices()
            .map(|x| match base.object(x) {
                Ok(o) => FlatObject {
                    class: o.class,
                    format: o.format,
                    hash: o.hash,
                    slots: o.slots.into(),
                    bytes: o.bytes.into(),
                    live: true,
                    hidden: crate::memory::hidden(o.aux),
                },
                Err(_) => FlatObject {
                    class: base.nil().word(),
                    format: Format::Pointers,
                    hash: 0,
                    slots: Box::default(),
                    bytes: Box::default(),
                    live: false,
                    hidden: false,
                },
            })
            .collect();
        let imported = objects.len();
        FlatHeap {
            imported,
            free: Vec::new(),
            objects,
            roots: base
                .roots()
                .iter()
                .map(|r| (r.name.clone(), r.value))
                .collect(),
            nil: base.nil().word(),
            int_class: base.int_class().map(Value::word),
            char_class: base.char_class().map(Value::word),
            float_class: base.float_class().map(Value::word),
            allocations: 0,
            allocated_bytes: 0,
            hash_bits: base.hash_bits(),
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True if the heap holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    #[inline(always)]
    fn index(&self, v: Value) -> MemResult<usize> {
        let w = v.word();
        match w.as_base() {
            Some(i) if i.get() < self.objects.len() => Ok(i.get()),
            Some(i) => Err(HeapError::NoSuchObject {
                index: i.get() as u64,
                len: self.objects.len() as u64,
            }
            .into()),
            None => Err(Self::not_an_object(w)),
        }
    }

    /// The error for a word that names no object: [`HeapError::InvalidWord`] for one that
    /// is no word at all (a base tag with bits above its index), as a tenant refuses it,
    /// else [`HeapError::NotAnObject`].
    #[cold]
    fn not_an_object(w: Word) -> cowheap_tenants::Error {
        if w.is_valid() {
            HeapError::NotAnObject(w).into()
        } else {
            HeapError::InvalidWord(w).into()
        }
    }

    /// `w`, unless it is no word at all ([`HeapError::InvalidWord`], as a tenant answers).
    #[inline(always)]
    fn valid(w: Word) -> MemResult<Word> {
        if w.is_valid() {
            Ok(w)
        } else {
            Err(HeapError::InvalidWord(w).into())
        }
    }

    #[inline(always)]
    fn obj(&self, v: Value) -> MemResult<&FlatObject> {
        let i = self.index(v)?;
        let o = &self.objects[i];
        if !o.live {
            return Err(cowheap_tenants::Error::Collected(v.word()));
        }
        Ok(o)
    }

    #[inline(always)]
    fn obj_mut(&mut self, v: Value) -> MemResult<&mut FlatObject> {
        let i = self.index(v)?;
        let o = &mut self.objects[i];
        if !o.live {
            return Err(cowheap_tenants::Error::Collected(v.word()));
        }
        Ok(o)
    }

    /// Replaces every reference to `from` by `to`, in every object and root, and in the
    /// classes of immediates (a Squeak VM takes those from the special objects array, which
    /// the become rewrites; a tenant reaches the target through its forwarder). Time:
    /// O(heap).
    fn redirect(&mut self, from: Word, to: Word) {
        for class in [
            &mut self.int_class,
            &mut self.char_class,
            &mut self.float_class,
        ]
        .into_iter()
        .flatten()
        {
            if *class == from {
                *class = to;
            }
        }
        for o in &mut self.objects {
            if o.class == from {
                o.class = to;
            }
            for s in o.slots.iter_mut() {
                if *s == from {
                    *s = to;
                }
            }
        }
        for r in self.roots.values_mut() {
            if *r == from {
                *r = to;
            }
        }
    }
}

impl ObjectMemory for FlatHeap {
    #[inline(always)]
    fn class_of(&self, v: Value) -> MemResult<Value> {
        let w = v.word();
        if w.is_ref() {
            return Ok(Value::shared(self.obj(v)?.class));
        }
        let class = if w.as_int().is_some() {
            self.int_class
        } else if w.as_char_code().is_some() {
            self.char_class
        } else if w.is_small_float() {
            self.float_class
        } else {
            // No object and no immediate with a class (a reserved word): as a tenant.
            return Err(Self::not_an_object(w));
        };
        class
            .map(Value::shared)
            .ok_or(cowheap_tenants::Error::NoImmediateClass(w))
    }

    #[inline(always)]
    fn slot(&self, obj: Value, i: usize) -> MemResult<Value> {
        let o = self.obj(obj)?;
        match o.slots.get(i) {
            Some(&w) => Ok(Value::shared(w)),
            None => Err(o.format.slot_error(i, o.slots.len()).into()),
        }
    }

    #[inline(always)]
    fn set_slot(&mut self, obj: Value, i: usize, v: Value) -> MemResult<()> {
        let w = v.word();
        if w.is_private() {
            return Err(HeapError::PrivateInBase(w).into());
        }
        if w.is_ref() {
            self.index(v)?;
        }
        let o = self.obj_mut(obj)?;
        let len = o.slots.len();
        match o.slots.get_mut(i) {
            Some(s) => {
                *s = w;
                Ok(())
            }
            None => Err(o.format.slot_error(i, len).into()),
        }
    }

    #[inline(always)]
    fn set_slots(&mut self, obj: Value, start: usize, values: &[Value]) -> MemResult<()> {
        for &v in values {
            let w = v.word();
            if w.is_private() {
                return Err(HeapError::PrivateInBase(w).into());
            }
            if w.is_ref() {
                self.index(v)?;
            }
        }
        let o = self.obj_mut(obj)?;
        let len = o.slots.len();
        match start
            .checked_add(values.len())
            .and_then(|end| o.slots.get_mut(start..end))
        {
            Some(s) => {
                for (d, v) in s.iter_mut().zip(values) {
                    *d = v.word();
                }
                Ok(())
            }
            None => Err(o.format.slot_error(start.max(len), len).into()),
        }
    }

    #[inline(always)]
    fn bytes(&self, obj: Value) -> MemResult<&[u8]> {
        Ok(&self.obj(obj)?.bytes)
    }

    fn set_bytes(&mut self, obj: Value, offset: usize, data: &[u8]) -> MemResult<()> {
        let o = self.obj_mut(obj)?;
        let len = o.bytes.len();
        match offset.checked_add(data.len()) {
            Some(end) if end <= len => {
                o.bytes[offset..end].copy_from_slice(data);
                Ok(())
            }
            end => Err(o
                .format
                .bytes_error(offset, end.unwrap_or(usize::MAX), len)
                .into()),
        }
    }

    #[inline(always)]
    fn size(&self, obj: Value) -> MemResult<ObjectSize> {
        let o = self.obj(obj)?;
        Ok(ObjectSize {
            slots: o.slots.len(),
            bytes: o.bytes.len(),
        })
    }

    #[inline(always)]
    fn format(&self, obj: Value) -> MemResult<Format> {
        Ok(self.obj(obj)?.format)
    }

    #[inline(always)]
    fn header(&self, obj: Value) -> MemResult<Header> {
        let o = self.obj(obj)?;
        Ok(Header {
            class: Value::shared(o.class),
            format: o.format,
            size: ObjectSize {
                slots: o.slots.len(),
                bytes: o.bytes.len(),
            },
        })
    }

    fn alloc(&mut self, class: Value, format: Format, size: ObjectSize) -> MemResult<Value> {
        format.check(size)?;
        self.obj(class)?;
        let hash = cowheap_heap::draw_hash(self.allocations, self.hash_bits);
        let o = FlatObject {
            class: class.word(),
            format,
            hash,
            slots: vec![self.nil; size.slots].into(),
            bytes: vec![0; size.bytes].into(),
            live: true,
            hidden: false,
        };
        let n = match self.free.pop() {
            Some(n) => {
                self.objects[n as usize] = o;
                n
            }
            None => {
                let n = u32::try_from(self.objects.len())
                    .map_err(|_| HeapError::TooLarge("more objects than references can name"))?;
                self.objects.push(o);
                n
            }
        };
        self.allocations += 1;
        self.allocated_bytes += 16 + 8 * size.slots as u64 + size.bytes as u64;
        Ok(Value::base(ObjectIndex::from_u32(n)))
    }

    #[inline(always)]
    fn identical(&self, a: Value, b: Value) -> MemResult<bool> {
        Ok(Self::valid(a.word())? == Self::valid(b.word())?)
    }

    fn identity_hash(&self, obj: Value) -> MemResult<u32> {
        Ok(self.obj(obj)?.hash)
    }

    /// Redirects every reference to `a` to `b`; `a`, which nothing refers to any more, is
    /// left out of the walk of every object from then on (as a tenant leaves out an object
    /// it forwarded), so `someInstance`/`nextInstance` and `someObject`/`nextObject` do not
    /// answer it. Time: O(heap).
    fn become_forward(&mut self, a: Value, b: Value) -> MemResult<()> {
        let (i, j) = (self.index(a)?, self.index(b)?);
        if i == j {
            return Ok(());
        }
        self.redirect(a.word(), b.word());
        self.objects[i].hidden = true;
        Ok(())
    }

    fn become_two_way(&mut self, a: Value, b: Value) -> MemResult<()> {
        let (i, j) = (self.index(a)?, self.index(b)?);
        self.objects.swap(i, j);
        Ok(())
    }

    fn root(&self, name: &str) -> Option<Value> {
        self.roots.get(name).copied().map(Value::shared)
    }

    fn set_root(&mut self, name: &str, v: Value) -> MemResult<()> {
        if v.word().is_ref() {
            self.index(v)?;
        }
        self.roots.insert(name.to_owned(), v.word());
        Ok(())
    }

    fn remove_root(&mut self, name: &str) {
        self.roots.remove(name);
    }

    fn private_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    fn collect(&mut self, roots: &[Value], weak: &WeakSlots) -> MemResult<Collected> {
        let n = self.objects.len();
        let mut marked = vec![false; n];
        let mut stack: Vec<usize> = (0..self.imported).collect();
        let extra = roots.iter().map(|v| v.word());
        let named = self.roots.values().copied();
        let classes = [self.int_class, self.char_class, self.float_class];
        for w in extra.chain(named).chain(classes.into_iter().flatten()) {
            if let Some(i) = w.as_base() {
                stack.push(i.get());
            }
        }
        // The weak objects reached, with their strong (named) slots: the others reach
        // nothing, and are cleared below if what they name is freed.
        let mut weaklings: Vec<(usize, usize)> = Vec::new();
        // Ephemerons reached whose keys were not reached when they were, and those fired.
        let (mut waiting, mut fired): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        let key_reached = |objects: &[FlatObject], marked: &[bool], e: usize| {
            objects[e].slots[0]
                .as_base()
                .is_none_or(|k| marked.get(k.get()).copied().unwrap_or(true))
        };
        let reach_slots = |o: &FlatObject, stack: &mut Vec<usize>| {
            stack.extend(o.slots.iter().filter_map(|w| w.as_base()).map(|x| x.get()));
        };
        loop {
            while let Some(i) = stack.pop() {
                match marked.get_mut(i) {
                    Some(m) if !*m => *m = true,
                    _ => continue,
                }
                let o = &self.objects[i];
                if let Some(c) = o.class.as_base() {
                    stack.push(c.get());
                }
                if o.format == Format::Ephemeron
                    && !o.slots.is_empty()
                    && !key_reached(&self.objects, &marked, i)
                {
                    waiting.push(i);
                    continue;
                }
                let strong = match o.format {
                    Format::Weak => weak
                        .strong_slots(self, Value::shared(o.class))
                        .unwrap_or(o.slots.len()),
                    _ => o.slots.len(),
                };
                if strong < o.slots.len() {
                    weaklings.push((i, strong));
                }
                stack.extend(
                    o.slots
                        .iter()
                        .take(strong)
                        .filter_map(|w| w.as_base())
                        .map(|x| x.get()),
                );
            }
            if waiting.is_empty() {
                break;
            }
            // An ephemeron whose key the mark has reached since holds its slots; when none
            // has, every one waiting is reached through ephemerons alone, and fires.
            let before = waiting.len();
            let (ready, rest): (Vec<usize>, Vec<usize>) = waiting
                .iter()
                .partition(|&&e| key_reached(&self.objects, &marked, e));
            waiting = rest;
            for e in ready {
                reach_slots(&self.objects[e], &mut stack);
            }
            if waiting.len() == before {
                for e in std::mem::take(&mut waiting) {
                    reach_slots(&self.objects[e], &mut stack);
                    fired.push(e);
                }
            }
        }
        let mut mourners = Vec::with_capacity(fired.len());
        for e in fired {
            self.objects[e].format = Format::Pointers;
            mourners.push(Value::shared(Word::base(ObjectIndex::from_u32(e as u32))));
        }
        let mut cleared = 0;
        let mut weak_mourners = Vec::new();
        for (i, strong) in weaklings {
            let before = cleared;
            for w in self.objects[i].slots.iter_mut().skip(strong) {
                if w.as_base()
                    .is_some_and(|x| !marked.get(x.get()).copied().unwrap_or(true))
                {
                    *w = weak.nil.word();
                    cleared += 1;
                }
            }
            if cleared > before {
                weak_mourners.push(Value::shared(Word::base(ObjectIndex::from_u32(i as u32))));
            }
        }
        for (i, &keep) in marked.iter().enumerate().skip(self.imported) {
            let o = &mut self.objects[i];
            if !keep && o.live {
                self.allocated_bytes -= o.cost();
                *o = FlatObject {
                    class: self.nil,
                    format: Format::Pointers,
                    hash: 0,
                    slots: Box::new([]),
                    bytes: Box::new([]),
                    live: false,
                    hidden: false,
                };
                self.free.push(i as u32);
            }
        }
        Ok(Collected {
            private_bytes: self.allocated_bytes,
            cleared,
            mourners,
            weak_mourners,
        })
    }

    /// Every live object in index order (the image's, then the new ones, a freed index
    /// reused in place). Time: O(objects).
    fn enumerate_objects(&self, out: &mut Vec<Value>) -> MemResult<()> {
        out.clear();
        out.extend(
            self.objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.live && !o.hidden)
                .map(|(i, _)| Value::base(ObjectIndex::from_u32(i as u32))),
        );
        Ok(())
    }

    /// Rewrites the object's class word. Time: O(1).
    fn set_class(&mut self, obj: Value, class: Value) -> MemResult<()> {
        self.obj(class)?;
        self.obj_mut(obj)?.class = class.word();
        Ok(())
    }
    fn set_identity_hash(&mut self, obj: Value, hash: u32) -> MemResult<()> {
        self.obj_mut(obj)?.hash = hash;
        Ok(())
    }
    /// A flat heap has one word per object: the word is the key.
    fn identity_key(&self, v: Value) -> MemResult<u64> {
        Ok(Self::valid(v.word())?.bits())
    }
    /// A flat heap swaps nothing out: it has no stubs and no fault handler.
    fn has_fault_handler(&self) -> bool {
        false
    }
    /// A flat heap has no stubs, so no segment of it is out: answers
    /// [`cowheap_tenants::Error::Swapped`] naming no object, as a tenant with no handler does.
    fn fault_in(&mut self, segment: u64) -> MemResult<()> {
        Err(cowheap_tenants::Error::Swapped {
            segment,
            object: Word::from_bits(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowheap_heap::Builder;

    #[test]
    fn collection_frees_unreachable_new_objects_and_reuses_them() {
        let mut b = Builder::new();
        let nil = b.add_nil();
        let class = b.add(nil, Format::Pointers, vec![nil; 3], vec![]).unwrap();
        b.add_root("class", class).unwrap();
        let base = b.freeze().unwrap();
        let mut f = FlatHeap::from_base(&base);
        let class = f.root("class").unwrap();
        let size = ObjectSize { slots: 1, bytes: 0 };
        let kept = f.alloc(class, Format::Pointers, size).unwrap();
        let inner = f.alloc(class, Format::Pointers, size).unwrap();
        f.set_slot(kept, 0, inner).unwrap();
        let lost = f.alloc(class, Format::Pointers, size).unwrap();
        let before = f.private_bytes();
        let weak = WeakSlots {
            nil: Value::shared(nil),
            named: |_| 0,
        };
        let after = f.collect(&[kept], &weak).unwrap();
        assert_eq!(after.private_bytes, before - 24);
        assert!(f.slot(inner, 0).is_ok(), "reachable through a root's slot");
        assert!(matches!(
            f.slot(lost, 0),
            Err(cowheap_tenants::Error::Collected(_))
        ));
        // The imported objects are never freed, whatever reaches them.
        f.collect(&[], &weak).unwrap();
        assert!(f.slot(class, 0).is_ok());
        // The freed index is reused.
        let again = f.alloc(class, Format::Pointers, size).unwrap();
        assert!(again.same_word(lost) || again.same_word(kept) || again.same_word(inner));
        let len = f.len();
        assert_eq!(len, base.len() + 3);
    }

    #[test]
    fn a_flat_heap_has_no_segment_to_fault_in() {
        let mut b = Builder::new();
        b.add_nil();
        let mut f = FlatHeap::from_base(&b.freeze().unwrap());
        assert!(!f.has_fault_handler());
        assert!(matches!(
            f.fault_in(3),
            Err(cowheap_tenants::Error::Swapped { segment: 3, .. })
        ));
    }
}
