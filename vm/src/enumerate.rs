//! Walking every object (`someObject`/`nextObject`, 138/139), every instance of a class
//! (`someInstance`/`nextInstance`, 77/78), and changing an object's class
//! (`primitiveChangeClass`, 115, and `primitiveAdoptInstance`, 160).
//!
//! The walk is the memory's [`ObjectMemory::enumerate_objects`] order: on a tenant the base
//! objects in index order (read through the tenant), then the tenant's own objects; on the
//! flat heap, index order; a Spur image's hidden objects in neither. `someObject` and `someInstance` start a walk: they take a fresh
//! list of the objects, O(objects), which the `Vm` keeps with each object's position, so a
//! `nextObject` or `nextInstance` after it finds its place in O(1) and scans on from there:
//! a whole walk is O(objects). A place is found by the object's identity key as it was
//! when the list was taken, or by identity with the object the walk answered last: on a
//! tenant the first write of a base object changes its key, and a walk in order that writes
//! what it meets still finds each step's receiver without a new list. Objects made after the list was taken are not in it (a walk
//! ends at the objects that existed when it started, where Squeak's would also visit the
//! ones made since, at the end of memory). An object a `next...` is given that is not in
//! the list takes a new list; if it is not in that either (it has been collected, or it is
//! not an object of this memory), the primitive fails.
//!
//! The work of a fresh list (one object listed) and of a `nextInstance`'s scan (one object
//! scanned) is charged to the run's bytecode budget, a bytecode an object, so a run that
//! asks for fresh lists over and over (the `nextObject` of objects made since) is stopped
//! by its budget as any run is; a walk in order is charged its one list and the objects it
//! scans, O(objects) in all. The list the interpreter drops itself (at every entry, so a
//! run resumed in a new slice walks on; at its own collections) is taken again by the next
//! `next...` free of charge, as it was before the work was charged: a slice of a walk
//! resumed is charged its steps, not a list, and does at most one list's work beyond its
//! budget. A `next...` that fails after taking a list (its receiver was not in it) is
//! charged that list all the same, with the method its failure runs, so a loop of such
//! failures is stopped by its budget too.
//!
//! The list is dropped whenever it could name a freed object or miss a moved one: at every
//! entry ([`Vm::perform`], [`Vm::resume`]; an embedder may collect between calls), at the
//! interpreter's own collections, becomes and class changes.

use crate::image::ClassFormat;
use crate::interp::{Flow, Vm};
use crate::memory::ObjectMemory;
use crate::{Result, VmError};
use cowheap_heap::{Format, Value};
use rustc_hash::FxHashMap;

type Prim = Result<Option<Flow>>;

/// The objects of a walk in the memory's order, with the position of each (by identity
/// key, as the keys were when the list was taken).
#[derive(Debug, Default)]
pub(crate) struct Enumeration {
    objects: Vec<Value>,
    position: FxHashMap<u64, usize>,
    /// The position of the object the walk answered last: the receiver of the next step
    /// of a walk in order, found here by identity when its key has changed since the list
    /// was taken (on a tenant, the first write of a base object changes its key).
    last: Option<usize>,
}

impl Enumeration {
    fn refill<M: ObjectMemory>(&mut self, m: &M) -> Result<()> {
        m.enumerate_objects(&mut self.objects)?;
        self.position.clear();
        self.position.reserve(self.objects.len());
        self.last = None;
        for (i, &v) in self.objects.iter().enumerate() {
            self.position.insert(m.identity_key(v)?, i);
        }
        Ok(())
    }
}

impl Vm {
    /// Forgets the list of objects a walk uses (it may name freed objects or miss new ones)
    /// and the at-cache (an entry may name a freed object's word, or a shape a become or
    /// class change altered): at every entry into a run and after every collection,
    /// become and class change.
    pub(crate) fn forget_enumeration(&mut self) {
        self.enumeration = None;
        self.at_cache.clear();
    }

    /// A fresh list of every object. Its length is the work to charge for it.
    fn enumeration_now<M: ObjectMemory>(&mut self, m: &M) -> Result<&Enumeration> {
        let mut e = self.enumeration.take().unwrap_or_default();
        e.refill(m)?;
        Ok(self.enumeration.insert(e))
    }

    /// The position of `obj` in the walk's list, by identity (so any reference to a listed
    /// object finds it, such as a base reference to an object a tenant copied), then in a
    /// fresh list. `None` if it is not there. Time: O(1), or O(objects) for a fresh list;
    /// the objects listed are answered beside it, the work to charge.
    fn position_of<M: ObjectMemory>(&mut self, m: &M, obj: Value) -> Result<(Option<usize>, u64)> {
        let key = m.identity_key(obj)?;
        if let Some(e) = &self.enumeration {
            if let Some(&i) = e.position.get(&key) {
                return Ok((Some(i), 0));
            }
            if let Some(i) = e.last
                && self.same(m, e.objects[i], obj)?
            {
                return Ok((Some(i), 0));
            }
        }
        // The first list since the interpreter dropped the last one itself is free: a walk
        // that goes on across entries pays for its list once, when it starts it.
        let free = std::mem::take(&mut self.relist_free);
        let e = self.enumeration_now(m)?;
        let charge = if free { 0 } else { e.objects.len() as u64 };
        Ok((e.position.get(&key).copied(), charge))
    }

    /// The first object of the list from position `from` whose class is `class`, and the
    /// objects scanned, the work to charge.
    fn instance_from<M: ObjectMemory>(
        &mut self,
        m: &M,
        class: Value,
        from: usize,
    ) -> Result<(Option<Value>, u64)> {
        let Some(e) = &self.enumeration else {
            return Ok((None, 0));
        };
        let mut scanned = 0;
        for (i, &v) in e.objects.iter().enumerate().skip(from) {
            scanned += 1;
            if self.same(m, m.class_of(v)?, class)? {
                self.answered(i);
                return Ok((Some(v), scanned));
            }
        }
        Ok((None, scanned))
    }

    /// Notes that the walk answers the object at position `i` of its list.
    fn answered(&mut self, i: usize) {
        if let Some(e) = &mut self.enumeration {
            e.last = Some(i);
        }
    }

    /// Answers `v`, an object found by a walk that listed or scanned `work` objects, which
    /// the run's budget is charged, a bytecode an object; a context handed to the image
    /// this way may be written by it, so callers' registers are no longer kept.
    fn answer_found<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        args: usize,
        v: Value,
        work: u64,
    ) -> Prim {
        if v.is_object() && self.is_context(m, v)? {
            self.expose(m)?;
        }
        self.pop_then_push(m, args + 1, v)?;
        Ok(Some(if work == 0 {
            Flow::Go
        } else {
            Flow::Worked(work)
        }))
    }

    /// Fails the primitive after a fresh list of `listed` objects that did not hold its
    /// receiver: the list is charged with the method the failure runs ([`Vm::unpaid`]).
    fn fail_after(&mut self, listed: u64) -> Option<Flow> {
        self.unpaid = self.unpaid.saturating_add(listed);
        None
    }

    /// Primitives 77 (`someInstance`), 78 (`nextInstance`), 138 (`someObject`) and 139
    /// (`nextObject`).
    pub(crate) fn prim_enumerate<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        index: u16,
        args: usize,
    ) -> Prim {
        if args != 0 {
            return Ok(None);
        }
        let rcvr = self.peek(m, 0)?;
        match index {
            77 => {
                if !rcvr.is_object() {
                    return Ok(None);
                }
                let listed = self.enumeration_now(m)?.objects.len() as u64;
                let (found, scanned) = self.instance_from(m, rcvr, 0)?;
                let nil = self.sp.nil;
                self.answer_found(m, 0, found.unwrap_or(nil), listed + scanned)
            }
            78 => {
                if !rcvr.is_object() {
                    return Ok(None);
                }
                let (i, listed) = match self.position_of(m, rcvr)? {
                    (Some(i), listed) => (i, listed),
                    (None, listed) => return Ok(self.fail_after(listed)),
                };
                let class = m.class_of(rcvr)?;
                let (found, scanned) = self.instance_from(m, class, i + 1)?;
                let nil = self.sp.nil;
                self.answer_found(m, 0, found.unwrap_or(nil), listed + scanned)
            }
            138 => {
                let e = self.enumeration_now(m)?;
                let (first, listed) = (e.objects.first().copied(), e.objects.len() as u64);
                match first {
                    Some(v) => {
                        self.answered(0);
                        self.answer_found(m, 0, v, listed)
                    }
                    None => Ok(None),
                }
            }
            _ => {
                if !rcvr.is_object() {
                    return Ok(None);
                }
                let (i, listed) = match self.position_of(m, rcvr)? {
                    (Some(i), listed) => (i, listed),
                    (None, listed) => return Ok(self.fail_after(listed)),
                };
                // The end of memory is answered as 0, as Squeak's `allObjectsDo:` expects.
                let next = self
                    .enumeration
                    .as_ref()
                    .and_then(|e| e.objects.get(i + 1).copied());
                if next.is_some() {
                    self.answered(i + 1);
                }
                let next = next.unwrap_or(Value::int(0));
                self.answer_found(m, 0, next, listed)
            }
        }
    }

    /// Primitive 115: `receiver primitiveChangeClassTo: anObject` makes the class of
    /// `anObject` the receiver's class ([`Vm::change_class`]) and answers the receiver.
    /// Fails for an immediate receiver or argument, and where [`Vm::change_class`] does.
    pub(crate) fn prim_change_class<M: ObjectMemory>(&mut self, m: &mut M, args: usize) -> Prim {
        if args != 1 {
            return Ok(None);
        }
        let (rcvr, arg) = (self.peek(m, 1)?, self.peek(m, 0)?);
        if !rcvr.is_object() || !arg.is_object() {
            return Ok(None);
        }
        let class = m.class_of(arg)?;
        if !self.change_class(m, rcvr, class)? {
            return Ok(None);
        }
        self.answer_found(m, 1, rcvr, 0)
    }

    /// Primitive 160: `aClass adoptInstance: anObject` (Squeak's `primitiveAdoptInstance`)
    /// makes the receiver the class of `anObject` ([`Vm::change_class`], the checks of
    /// 115) and answers the receiver. Fails for an immediate argument, a receiver that is
    /// not laid out as a class (pointers, a superclass and a method dictionary that are nil
    /// or objects of pointers, an integer format word: Squeak's `objCouldBeClassObj:`), and
    /// where [`Vm::change_class`] does. In an image without closures 160 is not this
    /// primitive (it was the file plugin's `primitiveDirectoryCreate`, as SqueakJS runs it
    /// there) and fails.
    pub(crate) fn prim_adopt_instance<M: ObjectMemory>(&mut self, m: &mut M, args: usize) -> Prim {
        if args != 1 || !self.sp.closures {
            return Ok(None);
        }
        let (class, obj) = (self.peek(m, 1)?, self.peek(m, 0)?);
        if !obj.is_object() || !self.could_be_class(m, class)? {
            return Ok(None);
        }
        if !self.change_class(m, obj, class)? {
            return Ok(None);
        }
        self.answer_found(m, 1, class, 0)
    }

    /// True if `v` is laid out as a class: an object of pointers of at least three
    /// fields, its superclass and method dictionary each nil or an object of pointers, its
    /// format word an integer.
    fn could_be_class<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<bool> {
        if !v.is_object() || m.format(v)? != Format::Pointers || m.size(v)?.slots < 3 {
            return Ok(false);
        }
        for i in 0..2 {
            let f = m.slot(v, i)?;
            if f.word() != self.sp.nil.word()
                && (!f.is_object() || m.format(f)? != Format::Pointers)
            {
                return Ok(false);
            }
        }
        Ok(m.slot(v, 2)?.as_int().is_some())
    }

    /// Makes `class` the class of the object `obj` when `obj`'s layout is what that class
    /// makes (same kind of fields, same number of named fields, indexable fields only if
    /// the class has them), keeping its identity, hash and fields, and answers true; false,
    /// changing nothing, for nil, true, false, contexts and methods as `obj` and a context
    /// class as `class` (whose identity or layout the interpreter relies on), or a layout
    /// that does not fit. A write the memory refuses (a read-only base object) is its
    /// error, with nothing changed.
    fn change_class<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        obj: Value,
        class: Value,
    ) -> Result<bool> {
        let fixed = [self.sp.nil, self.sp.true_, self.sp.false_].map(Value::word);
        if fixed.contains(&obj.word()) || self.is_context(m, obj)? {
            return Ok(false);
        }
        let contexts = [self.sp.method_context, self.sp.block_context];
        for c in contexts {
            if self.same(m, class, c)? {
                return Ok(false);
            }
        }
        let now = m.class_of(obj)?;
        let (Ok(now), Ok(to)) = (self.class_format(m, now), self.class_format(m, class)) else {
            return Ok(false);
        };
        if !fits(m.format(obj)?, m.size(obj)?.slots, now, to) {
            return Ok(false);
        }
        m.set_class(obj, class).map_err(VmError::from)?;
        self.flush_cache();
        self.forget_enumeration();
        Ok(true)
    }
}

/// True if an object of `format` with `slots` pointer fields, an instance of a class of
/// format `now`, is laid out as an instance of a class of format `to`: the same kind of
/// fields, and for pointers the same named fields and indexable ones only if `to` has them.
fn fits(format: Format, slots: usize, now: ClassFormat, to: ClassFormat) -> bool {
    match format {
        Format::Pointers => match to.spec {
            0 | 1 => slots == to.fixed && now.fixed == to.fixed,
            2 | 3 => slots >= to.fixed && now.fixed == to.fixed,
            _ => false,
        },
        Format::Weak => to.spec == 4 && now.fixed == to.fixed,
        Format::Ephemeron => {
            to.spec == ClassFormat::EPHEMERON && slots == to.fixed && now.fixed == to.fixed
        }
        Format::Words => to.spec == 6,
        Format::Bytes => (8..=11).contains(&to.spec),
        Format::Shorts => to.spec == ClassFormat::SHORTS,
        Format::DoubleWords => to.spec == ClassFormat::DOUBLE_WORDS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_formats_that_fit() {
        let f = |spec, fixed| ClassFormat { spec, fixed };
        let (pair, array) = (f(0, 2), f(2, 0));
        assert!(fits(Format::Pointers, 2, pair, f(0, 2)));
        assert!(!fits(Format::Pointers, 3, pair, f(0, 2)));
        assert!(!fits(Format::Pointers, 2, pair, f(0, 3)));
        assert!(
            !fits(Format::Pointers, 2, pair, array),
            "named fields differ"
        );
        assert!(fits(Format::Pointers, 5, array, f(2, 0)));
        assert!(fits(Format::Pointers, 5, f(3, 2), f(2, 2)));
        assert!(!fits(Format::Pointers, 1, f(3, 2), f(3, 2)));
        assert!(fits(Format::Bytes, 0, f(8, 0), f(8, 0)));
        assert!(!fits(Format::Bytes, 0, f(8, 0), f(6, 0)));
        assert!(fits(Format::Words, 0, f(6, 0), f(6, 0)));
        assert!(!fits(Format::CompiledMethod, 1, f(12, 0), f(12, 0)));
        assert!(!fits(Format::Pointers, 0, f(0, 0), f(8, 0)));
        let (shorts, longs) = (f(ClassFormat::SHORTS, 0), f(ClassFormat::DOUBLE_WORDS, 0));
        assert!(fits(Format::Shorts, 0, shorts, shorts));
        assert!(!fits(Format::Shorts, 0, shorts, f(8, 0)));
        assert!(fits(Format::DoubleWords, 0, longs, longs));
        assert!(!fits(Format::DoubleWords, 0, longs, shorts));
        assert!(!fits(Format::Words, 0, f(6, 0), longs));
    }
}
