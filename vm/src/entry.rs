//! Entry points: sending a message from outside, resuming, compiling and evaluating source.

use crate::error::{Result, VmError};
use crate::image::ctx;
use crate::interp::{ACTIVE_ROOT, BOTTOM_ROOT, CLOCK_ROOT, Flow, TIMER_ROOT, Vm};
use crate::memory::ObjectMemory;
use crate::prims::{millisecond_clock, ms_until};
use cowheap_heap::{BaseHeap, Format, ObjectSize, Value};
use std::collections::HashMap;

/// The interned Symbols of a base heap, by name.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    by_name: HashMap<Vec<u8>, Value>,
    class: Option<Value>,
}

impl Symbols {
    /// Every object of the base whose class is the class of the special selector `#+`: the
    /// image's Symbols. Time: O(objects of the base).
    pub fn from_base(base: &BaseHeap) -> Symbols {
        let class = base
            .root("specialObjects")
            .and_then(|s| base.slot(s, crate::image::special::SPECIAL_SELECTORS).ok())
            .and_then(|sels| base.slot(sels, 0).ok())
            .and_then(|plus| plus.as_base())
            .and_then(|x| base.class_word(x).ok());
        let mut by_name = HashMap::new();
        if let Some(class) = class {
            for x in base.indices() {
                if let Ok(o) = base.object(x)
                    && o.class == class
                    && o.format == Format::Bytes
                {
                    by_name.insert(o.bytes.to_vec(), Value::base(x));
                }
            }
        }
        Symbols {
            by_name,
            class: class.map(Value::shared),
        }
    }

    /// The Symbol named `name`, if the base has it.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.by_name.get(name.as_bytes()).copied()
    }

    /// Number of Symbols.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl Vm {
    /// Sends `selector` to `receiver` with `args`, running at most `budget` bytecodes, and
    /// answers the result. The send starts from a bottom context with a nil sender, which the
    /// entry method returns into.
    ///
    /// The receiver and arguments are kept alive by the run (they are on its bottom
    /// context's stack). The answer is not: on a tenant, pin it ([`Tenant::pin`]) or name it
    /// a root before a later call if it must outlive a collection, as any value an embedder
    /// holds.
    ///
    /// [`Tenant::pin`]: cowheap_tenants::Tenant::pin
    ///
    /// # Errors
    /// A typed [`VmError`]; after [`VmError::BudgetExhausted`] the run is suspended (its
    /// active context is the memory's root [`ACTIVE_ROOT`]) and [`Vm::resume`] continues it.
    pub fn perform<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        receiver: Value,
        selector: Value,
        args: &[Value],
        budget: u64,
    ) -> Result<Value> {
        // The bottom context stands for the method that would make this send: it has a
        // large frame's room (more with more arguments), so a primitive that pushes the
        // arguments it takes from an Array (`perform:withArguments:`,
        // `valueWithArguments:`) finds the room a sending method's context gives it.
        let frame = (args.len() + 1).max(crate::image::LARGE_FRAME);
        let class = self.sp.method_context;
        let bottom = m.alloc(
            class,
            Format::Pointers,
            ObjectSize {
                slots: ctx::TEMPS + frame,
                bytes: 0,
            },
        )?;
        m.set_slot(bottom, ctx::STACKP, Value::int(0))?;
        m.set_root(BOTTOM_ROOT, bottom)?;
        m.remove_root(ACTIVE_ROOT);
        m.remove_root(TIMER_ROOT);
        // A new run starts with no timer: one armed by an earlier run on this interpreter
        // (finished, or stopped by an error) is that run's, as the root removed above is,
        // and must not fire here (a new interpreter would not have it either). Its clock
        // goes on from the memory's last reading, if the process's is behind it.
        self.timer = None;
        self.take_clock(m);
        self.bottom = bottom;
        self.active = bottom;
        self.reset_fresh(m)?;
        self.forget_enumeration();
        self.relist_free = true;
        self.unpaid = 0;
        // Between two runs the embedder may have changed, through the memory's own calls,
        // what the method cache and the code cache were read from (a become of methods or
        // method dictionaries, a store into a dictionary, a collection that frees a word for
        // reuse), none of which the interpreter sees: as the at-cache's entries, lookups and
        // bytecodes are taken again within each run.
        self.flush_cache();
        self.faulted.clear();
        self.depth = 0;
        self.reset_frame(frame);
        self.loaded = true;
        self.push(m, receiver)?;
        for &a in args {
            self.push(m, a)?;
        }
        // What the run reads through a stub is faulted in, not read from a view.
        let was = m.set_reads_fault(true);
        let flow = self.send(m, selector, args.len(), false);
        if let Ok(Flow::Worked(n)) = flow {
            // The entry send's own primitive walked the objects: counted, though the one
            // primitive the caller asked for is not stopped by it.
            self.stats.charged += n;
        }
        let result = match flow {
            Ok(Flow::Done(v)) => Ok(v),
            Ok(Flow::Go | Flow::Worked(_)) => match self.same(m, self.active, bottom) {
                Ok(true) => self.pop(m).map_err(VmError::from),
                Ok(false) => self.interpret(m, budget),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        m.set_reads_fault(was);
        self.finish(m, result)
    }

    /// The SmallInteger `i`, or [`VmError::NotASmallInteger`] if it is past the image's
    /// SmallIntegers ([`crate::image::Specials`]' `min_int` to `max_int`): the image holds
    /// such a value as a LargeInteger, so an integer read from outside (the command line's
    /// `--send` receiver) is checked by it before it is run as a SmallInteger.
    ///
    /// # Errors
    /// [`VmError::NotASmallInteger`].
    pub fn small_integer(&self, i: i64) -> Result<Value> {
        self.int(i).ok_or(VmError::NotASmallInteger {
            value: i,
            min: self.sp.min_int,
            max: self.sp.max_int,
        })
    }

    /// Continues a run stopped by its budget, for at most `budget` more bytecodes.
    ///
    /// # Errors
    /// [`VmError::NothingToResume`] if the memory holds no suspended run; else as
    /// [`Vm::perform`].
    pub fn resume<M: ObjectMemory>(&mut self, m: &mut M, budget: u64) -> Result<Value> {
        let (Some(active), Some(bottom)) = (m.root(ACTIVE_ROOT), m.root(BOTTOM_ROOT)) else {
            return Err(VmError::NothingToResume);
        };
        self.bottom = bottom;
        // The timer the run had armed when it stopped, whichever interpreter ran it, and
        // the clock it stopped at: where the process's clock is behind that (a process
        // younger than the one that stopped the run), the run's clock goes on from it, so
        // that the deadline and the image's own times are as far ahead as at the stop.
        self.timer = m.root(TIMER_ROOT).and_then(|v| v.as_int());
        self.take_clock(m);
        // The registers are the last run's until the active context is loaded.
        self.loaded = false;
        // Unknown until counted: the count is redone when it passes the limit.
        self.depth = 0;
        self.reset_fresh(m)?;
        self.forget_enumeration();
        self.relist_free = true;
        self.unpaid = 0;
        // Between two runs the embedder may have changed, through the memory's own calls,
        // what the method cache and the code cache were read from (a become of methods or
        // method dictionaries, a store into a dictionary, a collection that frees a word for
        // reuse), none of which the interpreter sees: as the at-cache's entries, lookups and
        // bytecodes are taken again within each run.
        self.flush_cache();
        self.faulted.clear();
        // What the run reads through a stub is faulted in, not read from a view.
        let was = m.set_reads_fault(true);
        // What the run handed to the image before it stopped is not known: read every
        // returned-to context back.
        // A suspended run whose active context was swapped out since: brought back first.
        let ready = self
            .fault_in_ahead(m, active)
            .and_then(|()| Ok(self.expose(m)?))
            .and_then(|()| self.load_context(m, active));
        if let Err(e) = ready {
            // The run stays suspended, to be resumed once what stopped it is mended.
            m.set_reads_fault(was);
            return Err(e);
        }
        let result = self.interpret(m, budget);
        m.set_reads_fault(was);
        self.finish(m, result)
    }

    /// True if the memory holds a run suspended by its budget.
    pub fn is_suspended<M: ObjectMemory>(&self, m: &M) -> bool {
        m.root(ACTIVE_ROOT).is_some()
    }

    fn finish<M: ObjectMemory>(&mut self, m: &mut M, result: Result<Value>) -> Result<Value> {
        if !matches!(result, Err(VmError::BudgetExhausted { .. })) {
            m.remove_root(ACTIVE_ROOT);
            m.remove_root(BOTTOM_ROOT);
            m.remove_root(TIMER_ROOT);
            // The clock's last reading, which the memory's next run goes on from: a root
            // the memory refuses (its quota) is left out, and the next run takes the
            // reading of the last stop, if any, or the process's clock.
            if m.set_root(CLOCK_ROOT, Value::int(self.clock())).is_err() {
                m.remove_root(CLOCK_ROOT);
            }
        }
        result
    }

    /// Sets the run's clock to go on from the memory's last reading ([`CLOCK_ROOT`]) where
    /// the process's own clock is behind it, else to be the process's clock.
    fn take_clock<M: ObjectMemory>(&mut self, m: &M) {
        self.clock_offset = m
            .root(CLOCK_ROOT)
            .and_then(|v| v.as_int())
            .map_or(0, |at| ms_until(at, millisecond_clock()).max(0));
    }

    /// The Symbol `name`: the image's own if `symbols` has it, else a new, uninterned one
    /// (no method can be found under it, so sending it is a `doesNotUnderstand:`).
    pub fn symbol<M: ObjectMemory>(
        &self,
        m: &mut M,
        symbols: &Symbols,
        name: &str,
    ) -> Result<Value> {
        if let Some(s) = symbols.get(name) {
            return Ok(s);
        }
        let class = symbols.class.unwrap_or(self.sp.string);
        let s = m.alloc(
            class,
            Format::Bytes,
            ObjectSize {
                slots: 0,
                bytes: name.len(),
            },
        )?;
        m.set_bytes(s, 0, name.as_bytes())?;
        Ok(s)
    }

    /// A new String holding `text`.
    pub fn string<M: ObjectMemory>(&self, m: &mut M, text: &str) -> Result<Value> {
        let s = m.alloc(
            self.sp.string,
            Format::Bytes,
            ObjectSize {
                slots: 0,
                bytes: text.len(),
            },
        )?;
        m.set_bytes(s, 0, text.as_bytes())?;
        Ok(s)
    }

    /// [`Vm::perform`] with the selector given by name.
    ///
    /// # Errors
    /// As [`Vm::perform`].
    pub fn send_named<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        symbols: &Symbols,
        receiver: Value,
        selector: &str,
        args: &[Value],
        budget: u64,
    ) -> Result<Value> {
        let sel = self.symbol(m, symbols, selector)?;
        self.perform(m, receiver, sel, args, budget)
    }

    /// The value of the global `name` in the image's Smalltalk dictionary.
    pub fn global<M: ObjectMemory>(&self, m: &M, name: &str) -> Option<Value> {
        let smalltalk = m
            .slot(self.sp.array, crate::image::special::SMALLTALK)
            .ok()?;
        if !smalltalk.is_object() || self.is_nil(m, smalltalk).ok()? {
            return None;
        }
        let array = m.slot(smalltalk, 1).ok()?;
        let n = m.size(array).ok()?.slots;
        (0..n).find_map(|i| {
            let assoc = m.slot(array, i).ok()?;
            if !assoc.is_object() || self.is_nil(m, assoc).ok()? {
                return None;
            }
            let key = m.slot(assoc, 0).ok()?;
            (crate::names::string(m, key).as_deref() == Some(name))
                .then(|| m.slot(assoc, 1).ok())?
        })
    }

    /// Compiles `source` with the image's own compiler (`Compiler evaluate:`) and runs it,
    /// within `budget` bytecodes.
    ///
    /// # Errors
    /// [`VmError::NotAnImage`] if the image has no global `Compiler`; else as
    /// [`Vm::perform`].
    pub fn evaluate<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        symbols: &Symbols,
        source: &str,
        budget: u64,
    ) -> Result<Value> {
        let compiler = self
            .global(m, "Compiler")
            .ok_or(VmError::NotAnImage("the image has no Compiler"))?;
        let text = self.string(m, source)?;
        self.send_named(m, symbols, compiler, "evaluate:", &[text], budget)
    }

    /// `value printString` as Rust text.
    ///
    /// # Errors
    /// As [`Vm::perform`]; [`VmError::NotAnImage`] if `printString` answers no String.
    pub fn print_string<M: ObjectMemory>(
        &mut self,
        m: &mut M,
        symbols: &Symbols,
        value: Value,
        budget: u64,
    ) -> Result<String> {
        let s = self.send_named(m, symbols, value, "printString", &[], budget)?;
        crate::names::string(m, s).ok_or(VmError::NotAnImage("printString answered no String"))
    }

    /// The text of a String or Symbol value.
    pub fn text_of<M: ObjectMemory>(&self, m: &M, v: Value) -> Option<String> {
        crate::names::string(m, v)
    }

    /// The double of a Float value (or of a SmallInteger).
    pub fn float_value<M: ObjectMemory>(&self, m: &M, v: Value) -> Option<f64> {
        self.float_of(m, v).ok().flatten()
    }
}
