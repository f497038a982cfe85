//! A Squeak V3 bytecode interpreter over cowheap tenants and a plain flat heap.
//!
//! The interpreter ([`Vm`]) runs the code of a Squeak V3 image (pre-closure 6502 with
//! BlockContexts and `blockCopy:`, closure 6504/6505 with BlockClosures and temp vectors)
//! on any [`ObjectMemory`]: a cowheap [`Tenant`](cowheap_tenants::Tenant), where a client's
//! first write to a base object copies only that object, or a [`FlatHeap`], the image
//! decoded into one owned writable heap, which is the baseline and the oracle. The
//! interpreter is generic over the memory, so each gets its own monomorphised loop.
//!
//! - Contexts are ordinary heap objects of the image's own MethodContext and BlockContext
//!   classes. The interpreter caches the active context's registers and its fields in use
//!   (a register file) and writes them back whenever the context stops being active or may
//!   be looked at, so a run stopped at any bytecode boundary is all in the heap: it is
//!   resumed from the memory's root [`ACTIVE_ROOT`], also after a tenant snapshot is
//!   restored in another process. A method's context is allocated only when something could
//!   look at it (a send from it, a primitive, `thisContext`, a closure, a collection, a
//!   stop): a method that returns before that allocates none. While no context of a run
//!   has been handed to the image, a return restores the caller's registers kept at the
//!   send instead of reading its context back.
//! - Every store the interpreter makes (stack pushes, temporaries, instance variables,
//!   primitives) goes through [`ObjectMemory::set_slot`] or `set_bytes`: on a tenant that is
//!   the copy-on-write barrier.
//! - Sends look up the image's method dictionaries and superclass chains through a
//!   direct-mapped method cache owned by the `Vm` (one `Vm` per tenant), flushed by the
//!   image's `flushCache` primitives (89, 116, 119), by become and by collection.
//! - Primitives: SmallInteger (1-17, 31-bit on these 32-bit images), `@`, boxed Float
//!   (40-59), `at:`/`at:put:`/`size` (60-64), method literals (68-69), `basicNew` (70-71),
//!   become (72, 128, and the one-way ones that copy the hash or not, 248-249), `instVarAt:` (73-74), identityHash (75, and 175 for a Spur class),
//!   `newMethod:header:` (79),
//!   blocks (80-82), perform (83, 84, 100), `replaceFrom:...` (105), `==` and `class`
//!   (110-111), changeClass (115) and adoptInstance (160, in closure images), collection (130-131; weak slots and ephemerons held as
//!   Squeak does, the fired ephemerons fetched by 172 on Spur), clocks (135, 137),
//!   shallowCopy (148), `withArgs:executeMethod:` (188), closures (201-206), context
//!   access (210-212),
//!   quick returns. Everything else fails, so the image's own Smalltalk runs.
//! - Walks of every object and every instance (77-78, 138-139) in the memory's
//!   [`ObjectMemory::enumerate_objects`] order, with a kept list so a walk is O(objects).
//! - Processes (85-88, 167, 230) and the timer (136): the image's scheduler, its runnable
//!   lists and semaphores; a switch makes another Process's suspended context active. A
//!   wait nothing can ever signal is [`VmError::Deadlock`].
//! - Every call has a bytecode budget; errors are typed ([`VmError`]) and name the selector,
//!   the receiver's class and the Smalltalk call chain. A `doesNotUnderstand:`, `error:`,
//!   `cannotReturn:` or `mustBeBoolean` that reaches the root class's default method with no
//!   exception handler (a primitive-199 context) on the stack stops the run with an error.
//! - Root stubs of a tenant's swapped-out segments are transparent: a send to one, a
//!   primitive given one and a bytecode reading through one fault the segment in
//!   ([`ObjectMemory::fault_in`]) and run again, on the error path only; with no fault
//!   handler, or a fault that fails, the run stops with [`VmError::SegmentFault`].
//! - Rehash on import: [`Vm::rehash_by_image`] sends `#rehash` to hashed collections (those
//!   a segment import could not rehash by its model of the image's `hash`), each with its
//!   own budget and typed outcome ([`ImageRehash`]), as Squeak does on loading a segment.
//! - Collection: when a run's private bytes pass a threshold, the memory collects with the
//!   active and bottom contexts as roots (every register is reachable from them).
//!
//! ```no_run
//! use cowheap_forwarders::Base;
//! use cowheap_tenants::Tenant;
//! use cowheap_vm::{Symbols, Vm};
//!
//! let image = cowheap_squeak::import("bootstrapped.image").unwrap();
//! let symbols = Symbols::from_base(&image.heap);
//! let base = Base::new(image.heap);
//! let mut tenant = Tenant::fork(&base);
//! let mut vm = Vm::new(&tenant).unwrap();
//! let r = vm.send_named(&mut tenant, &symbols, cowheap_heap::Value::int(20), "benchFib", &[], 10_000_000).unwrap();
//! assert_eq!(r.as_int(), Some(21891));
//! ```
#![forbid(unsafe_code)]

pub mod bytecodes;
mod entry;
mod enumerate;
mod error;
mod flat;
pub mod image;
mod interp;
mod memory;
pub mod names;
mod prims;
mod process;
mod rehash;
pub mod run;
pub mod synth;

pub use cowheap_tenants::Header;
pub use entry::Symbols;
pub use error::{CallChain, FaultCause, Result, VmError};
pub use flat::FlatHeap;
pub use interp::{
    ACTIVE_ROOT, BOTTOM_ROOT, CLOCK_ROOT, DEFAULT_MAX_DEPTH, DEFAULT_MAX_TIMER_WAIT_MS,
    MOURNERS_ROOT, TIMER_ROOT, Vm, VmStats,
};
pub use memory::{BecomeKind, Collected, MemResult, ObjectMemory, WeakSlots};
pub use rehash::{ImageRehash, REHASH_ROOT, RehashFailure};

#[cfg(test)]
mod tests {
    #[test]
    fn interpreters_and_flat_heaps_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<crate::Vm>();
        send::<crate::FlatHeap>();
        send::<crate::VmError>();
    }
}
