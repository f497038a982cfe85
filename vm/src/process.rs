//! Processes and semaphores: `signal` (85), `wait` (86), `resume` (87), `suspend` (88),
//! `yield` (167), the timer (136) and `relinquishProcessorForMicroseconds:` (230), switching between the
//! image's own Process objects as Squeak's scheduler does.
//!
//! The scheduler is the image's: the ProcessorScheduler in the special objects array's
//! association (special object 3), with its array of runnable lists, one LinkedList per
//! priority, and its active process. The run that [`Vm::perform`] starts is the active
//! process's. A switch writes the registers into the active context, makes it the old
//! process's `suspendedContext`, makes the new process active and its context the active
//! one (taking it from the process). Nothing but the heap holds a suspended process, so a
//! run stopped by its budget in any process resumes, and a tenant snapshot holds every
//! process.
//!
//! The one source of signals from outside is the timer (primitive 136, which `Delay` uses):
//! the interpreter does not interrupt a running process for it, but when a `wait` or a
//! `suspend` leaves no process runnable, or the idle process asks to sleep with nothing
//! runnable, it sleeps until the timer is due (at most [`Vm::max_timer_wait_ms`]) and
//! signals the timer semaphore. With no timer set, nothing could ever wake a process, and
//! the run stops with [`VmError::Deadlock`] rather than spinning until its budget runs out.
//!
//! Layouts (Squeak V3): ProcessorScheduler `quiescentProcessLists activeProcess`; Process
//! `nextLink suspendedContext priority myList` (`myList` where the image has it);
//! LinkedList `firstLink lastLink`; Semaphore, a LinkedList, then `excessSignals`.

use crate::error::{CallChain, Result, VmError};
use crate::image::ctx;
use crate::image::special::{FINALIZATION_SEMAPHORE, TIMER_SEMAPHORE};
use crate::interp::{Flow, Vm};
use crate::memory::ObjectMemory;
use crate::prims::ms_until;
use cowheap_heap::Value;
use std::time::Duration;

type Prim = Result<Option<Flow>>;

const LISTS: usize = 0;
const ACTIVE: usize = 1;
const NEXT_LINK: usize = 0;
const SUSPENDED_CONTEXT: usize = 1;
const PRIORITY: usize = 2;
const MY_LIST: usize = 3;
const FIRST: usize = 0;
const LAST: usize = 1;
const EXCESS_SIGNALS: usize = 2;

impl Vm {
    /// The image's ProcessorScheduler, if it has one laid out as the interpreter expects.
    fn scheduler<M: ObjectMemory>(&self, m: &M) -> Result<Option<Value>> {
        let Some(assoc) = self.sp.scheduler else {
            return Ok(None);
        };
        if m.size(assoc)?.slots < 2 {
            return Ok(None);
        }
        let s = m.slot(assoc, 1)?;
        if !s.is_object() || self.is_nil(m, s)? || m.size(s)?.slots < 2 {
            return Ok(None);
        }
        let lists = m.slot(s, LISTS)?;
        if !lists.is_object() || self.is_nil(m, lists)? {
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// True if `v` is a Semaphore: an instance of the image's class Semaphore (special
    /// object 18) with its excess signals field, or, in an image that names no such class,
    /// any object with that field. `signal`, `wait` and the timer take only a Semaphore, as
    /// Squeak's primitives do (`assertClassOf: sema is: ClassSemaphore`): the same
    /// primitive in a method of another class fails, and never reads an object's fields as
    /// a process list or a count.
    fn is_semaphore<M: ObjectMemory>(&self, m: &M, v: Value) -> Result<bool> {
        if !v.is_object() || m.size(v)?.slots <= EXCESS_SIGNALS {
            return Ok(false);
        }
        Ok(match self.sp.semaphore {
            Some(class) => self.same(m, m.class_of(v)?, class)?,
            None => true,
        })
    }

    fn is_empty_list<M: ObjectMemory>(&self, m: &M, list: Value) -> Result<bool> {
        Ok(self.is_nil(m, m.slot(list, FIRST)?)?)
    }

    /// Appends `proc` to `list`.
    fn add_last_link<M: ObjectMemory>(&self, m: &mut M, list: Value, proc: Value) -> Result<()> {
        if self.is_empty_list(m, list)? {
            m.set_slot(list, FIRST, proc)?;
        } else {
            let last = m.slot(list, LAST)?;
            m.set_slot(last, NEXT_LINK, proc)?;
        }
        m.set_slot(list, LAST, proc)?;
        if m.size(proc)?.slots > MY_LIST {
            m.set_slot(proc, MY_LIST, list)?;
        }
        Ok(())
    }

    /// What [`Vm::add_last_link`] of `proc` to `list` changes: the list's last link and
    /// `proc`'s `myList` (where it has one), for [`Vm::unlink_last`].
    fn link_state<M: ObjectMemory>(
        &self,
        m: &M,
        list: Value,
        proc: Value,
    ) -> Result<(Value, Option<Value>)> {
        let last = m.slot(list, LAST)?;
        let my_list = if m.size(proc)?.slots > MY_LIST {
            Some(m.slot(proc, MY_LIST)?)
        } else {
            None
        };
        Ok((last, my_list))
    }

    /// Takes `proc` back off the end of `list`, where [`Vm::add_last_link`] put it,
    /// restoring what [`Vm::link_state`] read before: the list, and `proc`, as they were.
    fn unlink_last<M: ObjectMemory>(
        &self,
        m: &mut M,
        list: Value,
        proc: Value,
        (last, my_list): (Value, Option<Value>),
    ) -> Result<()> {
        let nil = self.sp.nil;
        if self.is_nil(m, last)? {
            m.set_slot(list, FIRST, nil)?;
        } else {
            m.set_slot(last, NEXT_LINK, nil)?;
        }
        m.set_slot(list, LAST, last)?;
        if let Some(v) = my_list {
            m.set_slot(proc, MY_LIST, v)?;
        }
        Ok(())
    }

    /// Takes the first process off `list`, which is not empty.
    fn remove_first_link<M: ObjectMemory>(&self, m: &mut M, list: Value) -> Result<Value> {
        let (first, last) = (m.slot(list, FIRST)?, m.slot(list, LAST)?);
        let nil = self.sp.nil;
        if self.same(m, first, last)? {
            m.set_slot(list, FIRST, nil)?;
            m.set_slot(list, LAST, nil)?;
        } else {
            let next = m.slot(first, NEXT_LINK)?;
            m.set_slot(list, FIRST, next)?;
        }
        m.set_slot(first, NEXT_LINK, nil)?;
        if m.size(first)?.slots > MY_LIST {
            m.set_slot(first, MY_LIST, nil)?;
        }
        Ok(first)
    }

    /// The runnable list of priority `p` (1-based), if the scheduler has one.
    fn runnable_list<M: ObjectMemory>(
        &self,
        m: &M,
        sched: Value,
        p: Option<i64>,
    ) -> Result<Option<Value>> {
        let lists = m.slot(sched, LISTS)?;
        let n = m.size(lists)?.slots;
        Ok(match p.and_then(|p| usize::try_from(p).ok()) {
            Some(p) if (1..=n).contains(&p) => Some(m.slot(lists, p - 1)?),
            _ => None,
        })
    }

    /// The non-empty runnable list of the highest priority, if any process is runnable.
    fn highest_runnable<M: ObjectMemory>(&self, m: &M, sched: Value) -> Result<Option<Value>> {
        let lists = m.slot(sched, LISTS)?;
        for i in (0..m.size(lists)?.slots).rev() {
            let list = m.slot(lists, i)?;
            if list.is_object() && !self.is_nil(m, list)? && !self.is_empty_list(m, list)? {
                return Ok(Some(list));
            }
        }
        Ok(None)
    }

    fn priority<M: ObjectMemory>(&self, m: &M, proc: Value) -> Result<Option<i64>> {
        Ok(m.slot(proc, PRIORITY)?.as_int())
    }

    /// Makes `proc` the active process: the active context (the registers written into it)
    /// becomes the old process's suspended context, `proc`'s suspended context the active
    /// one. The stack must hold what the old process will find when it is resumed.
    fn transfer_to<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        sched: Value,
        proc: Value,
    ) -> Result<Flow> {
        self.ready_to_switch(m, sched, proc)?;
        let old = m.slot(sched, ACTIVE)?;
        m.set_slot(old, SUSPENDED_CONTEXT, self.active)?;
        m.set_slot(sched, ACTIVE, proc)?;
        let c = m.slot(proc, SUSPENDED_CONTEXT)?;
        let nil = self.sp.nil;
        m.set_slot(proc, SUSPENDED_CONTEXT, nil)?;
        // Unknown until counted: the count is redone when it passes the limit.
        self.depth = 0;
        if self.is_bottom(c) {
            // The process that made the entry send, suspended right after it answered.
            let v = self.bottom_answer(m, c)?;
            self.active = c;
            self.reset_frame(0);
            return Ok(Flow::Done(v));
        }
        self.load_context(m, c)?;
        Ok(Flow::Go)
    }

    /// Checks, before anything changes, that a switch to `proc` can be made: the active
    /// process has a field for its suspended context (the switch stores the active context
    /// there), and the context it would load (its suspended context, or the active context
    /// when `proc` is the active process, which a switch suspends first) is the bottom one
    /// with a value on it or one whose registers read. Its callers check this before they
    /// take `proc` off its list or put the active process on one, so that a switch that
    /// cannot be made (a hostile image's process on a runnable list with no context, or a
    /// scheduler whose active process is nil) stops the run with the scheduler, its lists
    /// and the processes as they were. Also brings back the context if it was swapped out
    /// (the switch cannot run again once it has started), and writes the registers into
    /// the contexts, the kept callers' too: the context switched to may be one of them,
    /// and the old process's contexts are now the image's to look at.
    fn ready_to_switch<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        sched: Value,
        proc: Value,
    ) -> Result<()> {
        let old = m.slot(sched, ACTIVE)?;
        if !old.is_object() || m.size(old)?.slots <= SUSPENDED_CONTEXT {
            return Err(crate::interp::corrupt(
                "an active process with no field for its suspended context",
            ));
        }
        let next = m.slot(proc, SUSPENDED_CONTEXT)?;
        if !self.is_bottom(next) {
            self.fault_in_ahead(m, next)?;
        }
        self.store_registers(m)?;
        self.expose(m)?;
        if self.same(m, proc, m.slot(sched, ACTIVE)?)? {
            return Ok(());
        }
        if self.is_bottom(next) {
            self.bottom_answer(m, next)?;
        } else {
            self.read_context(m, next)?;
        }
        Ok(())
    }

    /// The value on the bottom context `c` (what the entry send answered).
    fn bottom_answer<M: ObjectMemory>(&self, m: &M, c: Value) -> Result<Value> {
        let sp = m.slot(c, ctx::STACKP)?.as_int().unwrap_or(0);
        let top = usize::try_from(sp)
            .ok()
            .and_then(|sp| sp.checked_sub(1))
            .ok_or_else(|| crate::interp::corrupt("a bottom context with nothing on it"))?;
        Ok(m.slot(c, ctx::TEMPS + top)?)
    }

    /// Resumes `proc`, taking it first off `from` (whose first link it is) when given: it
    /// runs now if its priority is higher than the active process's (which goes to the back
    /// of its runnable list), else it joins its runnable list. Everything is checked before
    /// anything changes.
    fn resume_process<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        sched: Value,
        proc: Value,
        from: Option<Value>,
    ) -> Result<Flow> {
        let active = m.slot(sched, ACTIVE)?;
        let (new, old) = (self.priority(m, proc)?, self.priority(m, active)?);
        let switch = new.unwrap_or(0) > old.unwrap_or(0);
        let sleeper = if switch { active } else { proc };
        let priority = if switch { old } else { new };
        let Some(list) = self.runnable_list(m, sched, priority)? else {
            return Err(corrupt_process());
        };
        if switch {
            self.ready_to_switch(m, sched, proc)?;
        }
        if let Some(from) = from {
            self.remove_first_link(m, from)?;
        }
        self.add_last_link(m, list, sleeper)?;
        if switch {
            return self.transfer_to(m, sched, proc);
        }
        Ok(Flow::Go)
    }

    /// True if `proc` can be resumed: a Process-shaped object with a suspended context, an
    /// integer priority the scheduler has a list for, on no list.
    fn resumable<M: ObjectMemory>(&self, m: &M, sched: Value, proc: Value) -> Result<bool> {
        if !proc.is_object() || m.size(proc)?.slots <= PRIORITY {
            return Ok(false);
        }
        let c = m.slot(proc, SUSPENDED_CONTEXT)?;
        if !c.is_object() || self.is_nil(m, c)? || !self.is_context(m, c)? {
            return Ok(false);
        }
        if m.size(proc)?.slots > MY_LIST && !self.is_nil(m, m.slot(proc, MY_LIST)?)? {
            return Ok(false);
        }
        let p = self.priority(m, proc)?;
        Ok(self.runnable_list(m, sched, p)?.is_some())
    }

    /// With no process runnable: sleeps until the timer set by primitive 136 is due (if it
    /// is due within [`Vm::max_timer_wait_ms`]), then signals the timer semaphore, making
    /// its waiter runnable (without switching to it). True if a process became runnable; an
    /// error, with the waiter left on the semaphore, if its priority has no runnable list.
    fn fire_timer<M: ObjectMemory>(&mut self, m: &mut M, sched: Value) -> Result<bool> {
        let Some(deadline) = self.timer else {
            return Ok(false);
        };
        let wait = ms_until(deadline, self.clock());
        if wait > i64::try_from(self.max_timer_wait_ms).unwrap_or(i64::MAX) {
            return Ok(false);
        }
        if let Ok(ms) = u64::try_from(wait) {
            std::thread::sleep(Duration::from_millis(ms));
        }
        self.timer = None;
        match self.special_semaphore(m, TIMER_SEMAPHORE)? {
            Some(sema) => self.signal_from_outside(m, sched, sema),
            None => Ok(false),
        }
    }

    /// Signals the finalization semaphore (special object 41), as Squeak's collector does
    /// when it clears weak slots, if it is a Semaphore: with no waiter the signal is
    /// counted; else its first waiter resumes, running at once (`preempt`: after the
    /// garbage-collect primitive with its answer pushed, or a collection at an activation
    /// or a backward jump) if its priority is higher than the active process's, as after
    /// an interrupt check in Squeak, or else (`preempt` false: a collection between runs,
    /// [`Vm::collect`](crate::Vm::collect)) joining its runnable list. Nothing is done in an image without such a semaphore or
    /// scheduler, or whose count is no SmallInteger with room for one more. Answers the
    /// switch when one was made.
    pub(crate) fn signal_finalization<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        preempt: bool,
    ) -> Result<Option<Flow>> {
        let Some(sched) = self.scheduler(m)? else {
            return Ok(None);
        };
        let Some(sema) = self.special_semaphore(m, FINALIZATION_SEMAPHORE)? else {
            return Ok(None);
        };
        if preempt && !self.is_empty_list(m, sema)? {
            let proc = m.slot(sema, FIRST)?;
            return match self.resume_process(m, sched, proc, Some(sema))? {
                Flow::Go => Ok(None),
                flow => Ok(Some(flow)),
            };
        }
        self.signal_from_outside(m, sched, sema)?;
        Ok(None)
    }

    /// The Semaphore at special object `index`, if a Semaphore is there: only a
    /// Semaphore's fields are read as a process list and a count.
    fn special_semaphore<M: ObjectMemory>(&self, m: &M, index: usize) -> Result<Option<Value>> {
        let array = self.sp.array;
        if m.size(array)?.slots <= index {
            return Ok(None);
        }
        let sema = m.slot(array, index)?;
        Ok(self.is_semaphore(m, sema)?.then_some(sema))
    }

    /// Signals `sema` from outside any process (the timer, the collector): its first
    /// waiter is made runnable (without a switch to it), or, with none, the signal is
    /// counted. True if a process became runnable; an error, with the waiter left on the
    /// semaphore, if its priority has no runnable list.
    fn signal_from_outside<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        sched: Value,
        sema: Value,
    ) -> Result<bool> {
        if self.is_empty_list(m, sema)? {
            let n = m.slot(sema, EXCESS_SIGNALS)?.as_int().unwrap_or(0);
            // A count at the image's largest SmallInteger stays there.
            if let Some(more) = n.checked_add(1).and_then(|k| self.int(k)) {
                m.set_slot(sema, EXCESS_SIGNALS, more)?;
            }
            return Ok(false);
        }
        // The waiter's runnable list is found before it leaves the semaphore: one whose
        // priority has none (a hostile image's) stays where it was, and the run stops.
        let proc = m.slot(sema, FIRST)?;
        let p = self.priority(m, proc)?;
        let Some(list) = self.runnable_list(m, sched, p)? else {
            return Err(corrupt_process());
        };
        self.remove_first_link(m, sema)?;
        self.add_last_link(m, list, proc)?;
        Ok(true)
    }

    /// The highest runnable list, after waiting for the timer if none is runnable.
    fn runnable_or_timer<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        sched: Value,
    ) -> Result<Option<Value>> {
        if let Some(list) = self.highest_runnable(m, sched)? {
            return Ok(Some(list));
        }
        if self.fire_timer(m, sched)? {
            return self.highest_runnable(m, sched);
        }
        Ok(None)
    }

    #[cold]
    fn deadlock(&self, primitive: u16) -> VmError {
        VmError::Deadlock {
            primitive,
            chain: CallChain::default(),
        }
    }

    /// Primitives 85-88, 167 and 230.
    pub(crate) fn prim_process<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        index: u16,
        args: usize,
    ) -> Prim {
        let sched = self.scheduler(m)?;
        match index {
            85 => {
                let sema = self.peek(m, 0)?;
                if args != 0 || !self.is_semaphore(m, sema)? {
                    return Ok(None);
                }
                if self.is_empty_list(m, sema)? {
                    // A count that is no integer, or whose next is no SmallInteger of the
                    // image's, fails the primitive.
                    let Some(more) = m
                        .slot(sema, EXCESS_SIGNALS)?
                        .as_int()
                        .and_then(|n| n.checked_add(1))
                        .and_then(|k| self.int(k))
                    else {
                        return Ok(None);
                    };
                    m.set_slot(sema, EXCESS_SIGNALS, more)?;
                    return Ok(Some(Flow::Go));
                }
                let Some(sched) = sched else {
                    return Err(self.blocked(index));
                };
                let proc = m.slot(sema, FIRST)?;
                self.resume_process(m, sched, proc, Some(sema)).map(Some)
            }
            86 => {
                let sema = self.peek(m, 0)?;
                if args != 0 || !self.is_semaphore(m, sema)? {
                    return Ok(None);
                }
                let Some(n) = m.slot(sema, EXCESS_SIGNALS)?.as_int() else {
                    return Ok(None);
                };
                if n > 0 {
                    m.set_slot(sema, EXCESS_SIGNALS, Value::int(n - 1))?;
                    return Ok(Some(Flow::Go));
                }
                let Some(sched) = sched else {
                    return Err(self.blocked(index));
                };
                // The active process waits on the semaphore before the timer may fire: the
                // semaphore may be the timer's, whose signal then makes it runnable again
                // (it is switched back to, as Squeak's `wait` on a Delay's semaphore).
                let active = m.slot(sched, ACTIVE)?;
                let before = self.link_state(m, sema, active)?;
                self.add_last_link(m, sema, active)?;
                let list = match self.runnable_or_timer(m, sched) {
                    Ok(Some(list)) => list,
                    Ok(None) => {
                        self.unlink_last(m, sema, active, before)?;
                        return Err(self.deadlock(index));
                    }
                    Err(e) => {
                        self.unlink_last(m, sema, active, before)?;
                        return Err(e);
                    }
                };
                let next = m.slot(list, FIRST)?;
                if let Err(e) = self.ready_to_switch(m, sched, next) {
                    self.unlink_last(m, sema, active, before)?;
                    return Err(e);
                }
                self.remove_first_link(m, list)?;
                self.transfer_to(m, sched, next).map(Some)
            }
            87 => {
                let proc = self.peek(m, 0)?;
                let Some(sched) = sched else {
                    return Err(self.blocked(index));
                };
                if args != 0
                    || self.same(m, proc, m.slot(sched, ACTIVE)?)?
                    || !self.resumable(m, sched, proc)?
                {
                    return Ok(None);
                }
                self.resume_process(m, sched, proc, None).map(Some)
            }
            88 => {
                let proc = self.peek(m, 0)?;
                let Some(sched) = sched else {
                    return Err(self.blocked(index));
                };
                // Only the active process is suspended here; the image's own code takes
                // another off its list.
                if args != 0 || !self.same(m, proc, m.slot(sched, ACTIVE)?)? {
                    return Ok(None);
                }
                let Some(list) = self.runnable_or_timer(m, sched)? else {
                    return Err(self.deadlock(index));
                };
                let next = m.slot(list, FIRST)?;
                self.ready_to_switch(m, sched, next)?;
                let nil = self.sp.nil;
                self.pop_then_push(m, 1, nil)?;
                self.remove_first_link(m, list)?;
                self.transfer_to(m, sched, next).map(Some)
            }
            167 => {
                // Processor yield, as Squeak's `primitiveYield`: with another process of
                // the active one's priority runnable, the active process goes to the back
                // of that list and the highest-priority runnable process runs (one of
                // higher priority first, if any is runnable: the active process may have
                // lowered its own priority).
                let Some(sched) = sched else {
                    return Ok(Some(Flow::Go));
                };
                let active = m.slot(sched, ACTIVE)?;
                let p = self.priority(m, active)?;
                let Some(list) = self.runnable_list(m, sched, p)? else {
                    return Ok(Some(Flow::Go));
                };
                if self.is_empty_list(m, list)? {
                    return Ok(Some(Flow::Go));
                }
                // Not empty: `list` itself is runnable, so some list is.
                let highest = self.highest_runnable(m, sched)?.unwrap_or(list);
                let next = m.slot(highest, FIRST)?;
                self.ready_to_switch(m, sched, next)?;
                self.drop_n(args);
                self.add_last_link(m, list, active)?;
                self.remove_first_link(m, highest)?;
                self.transfer_to(m, sched, next).map(Some)
            }
            136 => {
                // Delay class primSignal: aSemaphore atMilliseconds: aTime.
                let (sema, ms) = (self.peek(m, 1)?, self.peek(m, 0)?.as_int());
                let array = self.sp.array;
                let Some(ms) = ms else {
                    return Ok(None);
                };
                if args != 2 || m.size(array)?.slots <= TIMER_SEMAPHORE {
                    return Ok(None);
                }
                // A Semaphore arms the timer; anything else, nil included, clears it, nil
                // taking its place (as Squeak's primitive does).
                let sema = if self.is_semaphore(m, sema)? {
                    self.timer = Some(ms);
                    sema
                } else {
                    self.timer = None;
                    self.sp.nil
                };
                m.set_slot(array, TIMER_SEMAPHORE, sema)?;
                self.drop_n(2);
                Ok(Some(Flow::Go))
            }
            _ => {
                // relinquishProcessorForMicroseconds: the idle process's sleep. With no
                // process runnable and no timer due, nothing can ever signal one.
                let Some(sched) = sched else {
                    self.drop_n(args);
                    return Ok(Some(Flow::Go));
                };
                let Some(list) = self.runnable_or_timer(m, sched)? else {
                    return Err(self.deadlock(index));
                };
                // A process of higher priority (the timer's) runs now.
                let active = m.slot(sched, ACTIVE)?;
                let first = m.slot(list, FIRST)?;
                let old = self.priority(m, active)?;
                if self.priority(m, first)?.unwrap_or(0) > old.unwrap_or(0) {
                    // Checked before the argument goes: the switch then cannot fail.
                    if self.runnable_list(m, sched, old)?.is_none() {
                        return Err(corrupt_process());
                    }
                    self.ready_to_switch(m, sched, first)?;
                    self.drop_n(args);
                    return self.resume_process(m, sched, first, Some(list)).map(Some);
                }
                self.drop_n(args);
                Ok(Some(Flow::Go))
            }
        }
    }
}

#[cold]
fn corrupt_process() -> VmError {
    crate::interp::corrupt("a process whose priority has no runnable list")
}
