//! Why a run stopped without an answer.

use std::fmt;

/// The Smalltalk call chain at a stop: the innermost activation first, each as
/// `Class>>selector` (or `Class>>?` where the method is in no method dictionary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallChain(pub Vec<String>);

impl fmt::Display for CallChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            // Met before any method ran: the send the run began with.
            return f.write_str("the run's first send");
        }
        for (i, frame) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" <- ")?;
            }
            f.write_str(frame)?;
        }
        Ok(())
    }
}

/// Why the interpreter did not bring back a swapped-out segment it needed
/// ([`VmError::SegmentFault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultCause {
    /// The memory has no fault handler (a tenant without one).
    NoHandler,
    /// The fault handler failed, with the memory's error; the stubs stand.
    Failed(cowheap_tenants::Error),
    /// The segment was brought back, and the operation run again met a stub of it again.
    Again,
    /// The stub was met after the operation had changed the run's state, where it cannot be
    /// run again from its start (a return into a swapped-out context).
    NotRestartable,
}

impl fmt::Display for FaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultCause::NoHandler => f.write_str("the memory has no fault handler"),
            FaultCause::Failed(e) => write!(f, "the fault failed: {e}"),
            FaultCause::Again => f.write_str("it was met swapped out again after its fault"),
            FaultCause::NotRestartable => {
                f.write_str("it was met where the operation cannot be run again")
            }
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = VmError> = std::result::Result<T, E>;

/// Why the interpreter stopped without an answer. Every stop leaves the memory usable; after
/// [`VmError::BudgetExhausted`] the run can be resumed ([`crate::Vm::resume`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VmError {
    /// The run used up its bytecode budget. It is suspended where it stopped and can be
    /// resumed with a new budget.
    #[error("bytecode budget of {budget} exhausted (suspended in {chain})")]
    BudgetExhausted {
        /// The budget the call was given.
        budget: u64,
        /// Where it stopped.
        chain: CallChain,
    },
    /// A message was not understood and the image had no handler for it.
    #[error("{receiver_class} does not understand #{selector} (in {chain})")]
    DoesNotUnderstand {
        /// The selector.
        selector: String,
        /// The receiver's class.
        receiver_class: String,
        /// Where it was sent.
        chain: CallChain,
    },
    /// An error the image would hand to a debugger: `error:`, `cannotReturn:`,
    /// `mustBeBoolean` reaching the image's default handler with no exception handler on the
    /// stack.
    #[error("{receiver_class}>>{selector}: {message} (in {chain})")]
    ImageError {
        /// The selector that reported it (`error:`, `cannotReturn:`, ...).
        selector: String,
        /// The class of the receiver that reported it.
        receiver_class: String,
        /// The message text, when the image gave one.
        message: String,
        /// Where it happened.
        chain: CallChain,
    },
    /// The context chain grew past the interpreter's depth limit.
    #[error("stack overflow: more than {depth} contexts (in {chain})")]
    StackOverflow {
        /// The limit.
        depth: usize,
        /// The innermost frames.
        chain: CallChain,
    },
    /// A method or context whose layout the interpreter cannot run.
    #[error("corrupt method or context: {what} (in {chain})")]
    CorruptMethod {
        /// What is wrong.
        what: &'static str,
        /// Where.
        chain: CallChain,
    },
    /// A bytecode the image's bytecode set does not define.
    #[error("unknown bytecode {bytecode} (in {chain})")]
    UnknownBytecode {
        /// The bytecode.
        bytecode: u8,
        /// Where.
        chain: CallChain,
    },
    /// A method of a bytecode set the interpreter does not run (the Sista set of a Spur
    /// method whose header has the sign bit set).
    #[error("unsupported bytecode set: {set} (in {chain})")]
    UnsupportedBytecodeSet {
        /// The set.
        set: &'static str,
        /// Where.
        chain: CallChain,
    },
    /// The computation would switch processes in an image without a ProcessorScheduler the
    /// interpreter can use.
    #[error("the computation would block on a process primitive {primitive} (in {chain})")]
    WouldBlock {
        /// The primitive.
        primitive: u16,
        /// Where.
        chain: CallChain,
    },
    /// Every process is waiting: a `wait` or `suspend` (or the idle process's sleep) left
    /// none runnable, and with no timer due (within [`crate::Vm::max_timer_wait_ms`]) and
    /// no external event to signal a semaphore, none ever would be. The primitive that found
    /// it changed nothing (but for signalling a timer that was due).
    #[error("deadlock: no process is runnable at primitive {primitive} (in {chain})")]
    Deadlock {
        /// The primitive.
        primitive: u16,
        /// Where.
        chain: CallChain,
    },
    /// The run read through a root stub of swapped-out segment `segment` and did not bring
    /// the segment back (`cause`). The stubs stand; the memory stays usable.
    #[error(
        "segment {segment} is swapped out and was not faulted in ({cause}){}{} (in {chain})",
        selector.as_ref().map(|s| format!(", sending #{s}")).unwrap_or_default(),
        receiver_class.as_ref().map(|c| format!(" to a {c}")).unwrap_or_default()
    )]
    SegmentFault {
        /// The segment's id.
        segment: u64,
        /// Why it was not brought back.
        cause: FaultCause,
        /// The message being sent when the stub was met (its lookup or its primitive), if a
        /// send met it.
        selector: Option<String>,
        /// The class of that send's receiver, unless the receiver is the stub itself.
        receiver_class: Option<String>,
        /// Where.
        chain: CallChain,
    },
    /// The memory refused an operation the interpreter needed (quota, corrupt object).
    #[error("object memory: {0}")]
    Memory(#[from] cowheap_tenants::Error),
    /// The memory does not hold a Squeak image the interpreter can run.
    #[error("not a runnable Squeak image: {0}")]
    NotAnImage(&'static str),
    /// The image is of a version the interpreter does not run.
    #[error("unsupported image version {version}: {why}")]
    UnsupportedImage {
        /// The image version (`image.version`).
        version: i64,
        /// What it would need.
        why: &'static str,
    },
    /// There is no suspended run to resume.
    #[error("nothing to resume")]
    NothingToResume,
    /// An integer to be made a SmallInteger of the image ([`crate::Vm::small_integer`]: the
    /// integer `cowheap run --send` sends to) that the image's SmallIntegers do not reach
    /// (31 bits in a 32-bit image, 61 in a 64-bit one): the image holds such a value as a
    /// LargeInteger, and its code would take a SmallInteger past its range for another
    /// value (`1073741824 class` answered SmallInteger on a 32-bit image).
    #[error("{value} is no SmallInteger of this image (its SmallIntegers are {min} to {max})")]
    NotASmallInteger {
        /// The value.
        value: i64,
        /// The image's least SmallInteger.
        min: i64,
        /// The image's largest SmallInteger.
        max: i64,
    },
}

impl VmError {
    /// The call chain the error names, if any.
    pub fn chain(&self) -> Option<&CallChain> {
        match self {
            VmError::BudgetExhausted { chain, .. }
            | VmError::DoesNotUnderstand { chain, .. }
            | VmError::ImageError { chain, .. }
            | VmError::StackOverflow { chain, .. }
            | VmError::CorruptMethod { chain, .. }
            | VmError::UnknownBytecode { chain, .. }
            | VmError::UnsupportedBytecodeSet { chain, .. }
            | VmError::WouldBlock { chain, .. }
            | VmError::Deadlock { chain, .. }
            | VmError::SegmentFault { chain, .. } => Some(chain),
            _ => None,
        }
    }
}
