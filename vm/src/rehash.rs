//! Rehashing hashed collections by the image's own code.
//!
//! When Squeak loads an image segment it sends `rehash` to every hashed collection in it:
//! the collection's own method, whatever its class and its elements' `hash` are. The
//! segment crate rehashes by a model of the image's hashing (`cowheap_segment::rehash`)
//! and reports, with a typed reason, the collections it cannot place: elements whose
//! `hash` has loops or temporaries, classes with their own `scanFor:`. [`Vm::rehash_by_image`]
//! finishes those the way Squeak does: it sends `#rehash` to each collection it is given,
//! running the image's code with a bytecode budget per collection.
//!
//! The interpreter does not depend on the segment crate (nor the segment crate on it): the
//! caller passes plain [`Value`]s, usually the collections a segment import reported as not
//! rehashed (`Imported::left_for_image` or `Materialised::left_for_image` in
//! `cowheap_segment`), or any others it chooses. A user of the segment crate alone never
//! builds or runs the interpreter.
//!
//! Each collection is a run of its own: its own budget, its own outcome. A run that stops
//! (`doesNotUnderstand:`, the image's `error:`, the budget, a memory refusal) is recorded
//! with its typed [`VmError`] and the next collection is sent `rehash` all the same; a run
//! stopped by its budget is abandoned (not left suspended), so the memory holds no
//! suspended run afterwards and takes further sends. What a stopped run leaves in its
//! collection is what the image's code had done by then: the `rehash` of `mini.image` and
//! Scratch builds a new table (`self species new: self size`) and installs it in its last
//! step (`array := newSelf array`, a MethodDictionary's `self become: newSelf`), so a run
//! stopped before that leaves the collection as it was.

use crate::error::{Result, VmError};
use crate::interp::{ACTIVE_ROOT, BOTTOM_ROOT, TIMER_ROOT, Vm};
use crate::memory::ObjectMemory;
use crate::{Symbols, names};
use cowheap_heap::{Format, ObjectSize, Value};
use std::fmt;

/// The memory root that keeps the collections of a [`Vm::rehash_by_image`] call alive while
/// the runs (which may collect) go on; removed before the call returns.
pub const REHASH_ROOT: &str = "cowheap-vm.rehash";

/// A collection whose `rehash` did not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RehashFailure {
    /// Its position in the collections given.
    pub index: usize,
    /// The name of its class, when it has one.
    pub class: Option<String>,
    /// Why the run stopped. A [`VmError::BudgetExhausted`] names where the run was when
    /// its budget ran out; the run was abandoned there and cannot be resumed.
    pub error: VmError,
}

/// What [`Vm::rehash_by_image`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRehash {
    /// The collections whose `rehash` answered: their positions in the collections given.
    pub rehashed: Vec<usize>,
    /// The collections whose `rehash` stopped, with the typed error.
    pub failed: Vec<RehashFailure>,
    /// Bytecodes run in all, with the budget the runs' walks were charged
    /// ([`crate::VmStats::charged`]).
    pub bytecodes: u64,
}

impl fmt::Display for ImageRehash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rehashed by the image's code: {} of {} ({} bytecodes), {} failed",
            self.rehashed.len(),
            self.rehashed.len() + self.failed.len(),
            self.bytecodes,
            self.failed.len()
        )?;
        for x in &self.failed {
            writeln!(
                f,
                "  failed: {} {}: {}",
                x.index,
                x.class.as_deref().unwrap_or("?"),
                x.error
            )?;
        }
        Ok(())
    }
}

impl Vm {
    /// Sends `#rehash` to each of `collections` in turn, each a run of at most `budget`
    /// bytecodes, and reports which answered and which stopped (see the module doc). The
    /// collections are kept alive through the runs by the root [`REHASH_ROOT`]. A run
    /// suspended in the memory before the call is abandoned, as by any [`Vm::perform`].
    ///
    /// Time: the image's `rehash` of each collection (for `Set>>rehash`, O(elements) sends
    /// of `hash` and `=`), at most `budget` bytecodes each, plus O(collections).
    ///
    /// # Errors
    /// Only what prevents every run: a memory that refuses the Array holding the
    /// collections or the root naming it (a quota, a value that leads nowhere in it). A
    /// collection's own failure is in [`ImageRehash::failed`].
    pub fn rehash_by_image<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        symbols: &Symbols,
        collections: &[Value],
        budget: u64,
    ) -> Result<ImageRehash> {
        let selector = self.symbol(m, symbols, "rehash")?;
        // The collections and the selector (a new Symbol where the image has none) in one
        // Array named a root: the runs may collect.
        let n = collections.len();
        let holder = m.alloc(
            self.sp.array_class,
            Format::Pointers,
            ObjectSize {
                slots: n + 1,
                bytes: 0,
            },
        )?;
        m.set_slots(holder, 0, collections)?;
        m.set_slot(holder, n, selector)?;
        m.set_root(REHASH_ROOT, holder)?;
        let mut report = ImageRehash::default();
        let result = (|| -> Result<()> {
            for index in 0..n {
                // The holder is a root, so it is never collected, and objects do not move.
                let c = m.slot(holder, index)?;
                let selector = m.slot(holder, n)?;
                let spent = |s: crate::VmStats| s.bytecodes + s.charged;
                let before = spent(self.stats());
                let outcome = self.perform(m, c, selector, &[], budget);
                report.bytecodes += spent(self.stats()) - before;
                match outcome {
                    Ok(_) => report.rehashed.push(index),
                    Err(error) => {
                        // A run stopped by its budget is suspended: abandoned here, so its
                        // contexts are garbage and the memory takes new sends.
                        m.remove_root(ACTIVE_ROOT);
                        m.remove_root(BOTTOM_ROOT);
                        m.remove_root(TIMER_ROOT);
                        let class = m
                            .class_of(c)
                            .ok()
                            .and_then(|class| names::class_name(m, class));
                        report.failed.push(RehashFailure {
                            index,
                            class,
                            error,
                        });
                    }
                }
            }
            Ok(())
        })();
        m.remove_root(REHASH_ROOT);
        result.map(|()| report)
    }
}
