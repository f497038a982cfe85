//! The operating system's copy-on-write as a comparator for the interpreter: `fork()`ed
//! children that each inherit one [`FlatHeap`] built by their parent, and run a program on
//! their copy of it.
//!
//! The kernel shares every page of the parent with the child and copies a page on the first
//! write to it from either side. A child's cost is its `Private_Dirty` (the pages only it
//! holds and has written: the flat heap's pages its run wrote, the contexts and other objects
//! it allocated, its stack, what the C library writes after a fork), which the child reads
//! from `/proc/self/smaps_rollup` itself, once as it starts and once after its run, and
//! reports with the run's answer and counts through a pipe. The parent touches as little as
//! it can while children run (nothing is allocated between forks), since a page the parent
//! writes is copied for the parent and its old page is left to the child alone, where it
//! would count as the child's.
//!
//! Used by the `fork` example (the bench) and by the `fork` test (the children's answers
//! against a tenant's). Linux only: `/proc`.
//!
//! # Forking a process with threads
//! After `fork()` only the calling thread exists in the child; a lock another thread held at
//! the fork stays held there. The child here takes no lock of the standard library (it
//! prints nothing, reads no environment variable) and allocates through the C library's
//! `malloc`, which glibc takes and releases around `fork()` so that the child's allocator is
//! consistent. The example checks that it forks from a single thread anyway; the test runs in
//! the test harness, whose other thread waits for the test's end.

use cowheap_heap::Value;
use cowheap_vm::{FlatHeap, ObjectMemory, Symbols, Vm, VmError};
use std::io::{PipeReader, Read, Write};
use std::time::{Duration, Instant};

/// What the bench runs, on every side: the same source or the same send.
#[derive(Clone, Debug)]
pub(crate) enum Program {
    /// A unary send to a SmallInteger, for images without a compiler (`26 benchFib`).
    Send {
        /// The receiver.
        receiver: i64,
        /// The selector.
        selector: &'static str,
    },
    /// Source compiled and run by the image's own compiler (`Compiler evaluate:`).
    Evaluate(String),
}

impl Program {
    /// The program as it would be typed.
    pub(crate) fn label(&self) -> String {
        match self {
            Program::Send { receiver, selector } => format!("{receiver} {selector}"),
            Program::Evaluate(source) => source.clone(),
        }
    }

    /// Runs the program once in `vm` on `m`: its answer, bytecodes, sends and time.
    ///
    /// # Errors
    /// The run's [`VmError`].
    pub(crate) fn run<M: ObjectMemory>(
        &self,
        vm: &mut Vm,
        m: &mut M,
        symbols: &Symbols,
        budget: u64,
    ) -> Result<Outcome, VmError> {
        let before = vm.stats();
        let t = Instant::now();
        let value = match self {
            Program::Send { receiver, selector } => {
                vm.send_named(m, symbols, Value::int(*receiver), selector, &[], budget)?
            }
            Program::Evaluate(source) => vm.evaluate(m, symbols, source, budget)?,
        };
        let time = t.elapsed();
        let after = vm.stats();
        Ok(Outcome {
            answer: value.as_int(),
            bytecodes: after.bytecodes - before.bytecodes,
            sends: after.sends - before.sends,
            time,
        })
    }

    /// Runs the program `rounds` times (at least once) in one `vm`.
    ///
    /// # Errors
    /// A run's [`VmError`]; a round answering differently from the first is
    /// [`VmError::NotAnImage`], since the program is not then a fixed workload.
    pub(crate) fn best_of<M: ObjectMemory>(
        &self,
        vm: &mut Vm,
        m: &mut M,
        symbols: &Symbols,
        budget: u64,
        rounds: usize,
    ) -> Result<Best, VmError> {
        let mut best = Best::new(self.run(vm, m, symbols, budget)?);
        for _ in 1..rounds {
            let again = self.run(vm, m, symbols, budget)?;
            if again.answer != best.first.answer {
                return Err(VmError::NotAnImage(
                    "a round of the program answered differently",
                ));
            }
            best.add(again);
        }
        Ok(best)
    }
}

/// The rounds of a program on one side: the first (which every side starts from the same
/// state, so its counts must agree) and the fastest in bytecodes per second (a later round
/// may run fewer bytecodes: a method compiled again replaces the first one's entry rather
/// than adding it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Best {
    /// The first round.
    pub(crate) first: Outcome,
    /// The round with the most bytecodes per second.
    pub(crate) fastest: Outcome,
}

impl Best {
    /// Rounds so far: `first` only.
    pub(crate) fn new(first: Outcome) -> Best {
        Best {
            first,
            fastest: first,
        }
    }

    /// Counts one more round.
    pub(crate) fn add(&mut self, round: Outcome) {
        if round.bytecodes_per_s() > self.fastest.bytecodes_per_s() {
            self.fastest = round;
        }
    }
}

/// One run of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The answer, if it is a SmallInteger.
    pub(crate) answer: Option<i64>,
    /// Bytecodes run.
    pub(crate) bytecodes: u64,
    /// Sends made.
    pub(crate) sends: u64,
    /// Wall time.
    pub(crate) time: Duration,
}

impl Outcome {
    /// Bytecodes per second.
    pub(crate) fn bytecodes_per_s(&self) -> f64 {
        self.bytecodes as f64 / self.time.as_secs_f64().max(1e-9)
    }

    /// Sends per second.
    pub(crate) fn sends_per_s(&self) -> f64 {
        self.sends as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

/// Why a child has no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildFailure {
    /// The interpreter stopped with an error (the child cannot send the error itself).
    Vm,
    /// The child panicked.
    Panicked,
}

/// What one child did and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChildReport {
    /// Its rounds.
    pub(crate) outcome: Result<Best, ChildFailure>,
    /// Its `Private_Dirty` in bytes as it started, before anything ran: what the fork
    /// itself costs. `None` if `/proc/self/smaps_rollup` could not be read.
    pub(crate) dirty_at_start: Option<u64>,
    /// Its `Private_Dirty` in bytes once its `Vm` is made, before the program runs.
    pub(crate) dirty_with_vm: Option<u64>,
    /// Its `Private_Dirty` in bytes after its runs.
    pub(crate) dirty_after: Option<u64>,
    /// Minor page faults its runs took (each a page copied on write, or a new page zeroed):
    /// a count, not a time, so steady on a shared machine.
    pub(crate) minor_faults: Option<u64>,
}

/// The children of one [`run_children`].
#[derive(Clone, Debug)]
pub(crate) struct Children {
    /// Each child's report, in the order they were forked.
    pub(crate) reports: Vec<ChildReport>,
    /// Wall time from the first fork to the last child's reaping.
    pub(crate) wall: Duration,
}

/// Words of the message a child writes to its pipe.
const WORDS: usize = 13;
/// The message's marker for "none".
const NONE: u64 = u64::MAX;

/// How each child runs its program.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildRuns {
    /// Bytecode budget of each run.
    pub(crate) budget: u64,
    /// Runs of the program in the child's one `Vm`; the fastest counts.
    pub(crate) rounds: usize,
    /// The `Vm`'s collection step ([`Vm::set_collection_step`]); `None` keeps its default.
    pub(crate) collection_step: Option<u64>,
}

/// Forks `children` children of this process, `parallel` at a time (at least one), each of
/// which makes a [`Vm`] on its copy of `heap` and runs `program` as `runs` says
/// ([`Program::best_of`]), and collects their reports. `heap` is not changed in this process:
/// every change a child makes is to its own copy.
///
/// # Errors
/// An I/O error if a pipe or a child cannot be made, or a child dies before it reports.
pub(crate) fn run_children(
    heap: &mut FlatHeap,
    symbols: &Symbols,
    program: &Program,
    runs: ChildRuns,
    children: usize,
    parallel: usize,
) -> std::io::Result<Children> {
    let parallel = parallel.max(1);
    let mut reports = Vec::with_capacity(children);
    // Made before any fork, so that the parent allocates nothing while children run.
    let mut wave: Vec<(libc::pid_t, PipeReader)> = Vec::with_capacity(parallel);
    let start = Instant::now();
    let mut forked = 0;
    while forked < children {
        let now = parallel.min(children - forked);
        for _ in 0..now {
            let child = fork_child(|| child_main(heap, symbols, program, runs));
            match child {
                Ok(c) => wave.push(c),
                Err(e) => {
                    // Reap the children already forked before giving up.
                    for (pid, _) in wave.drain(..) {
                        let _ = reap(pid);
                    }
                    return Err(e);
                }
            }
        }
        forked += now;
        let mut failure = None;
        for (pid, mut reader) in wave.drain(..) {
            let mut bytes = [0u8; WORDS * 8];
            let received = reader.read_exact(&mut bytes);
            drop(reader);
            let status = reap(pid);
            match (received, status) {
                (Ok(()), Ok(_)) => reports.push(decode(bytes)),
                (Err(e), Ok(status)) => {
                    failure.get_or_insert(std::io::Error::other(format!(
                        "a child died before it reported ({e}; wait status {status:#x})"
                    )));
                }
                (_, Err(e)) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(Children {
        reports,
        wall: start.elapsed(),
    })
}

/// The child's whole life after the fork: its `Private_Dirty`, the runs, its
/// `Private_Dirty` again, as the message words.
fn child_main(
    heap: &mut FlatHeap,
    symbols: &Symbols,
    program: &Program,
    runs: ChildRuns,
) -> [u64; WORDS] {
    let dirty_at_start = self_private_dirty();
    let mut dirty_with_vm = None;
    let mut minor_faults = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut vm = Vm::new(&*heap)?;
        if let Some(step) = runs.collection_step {
            vm.set_collection_step(step);
        }
        dirty_with_vm = self_private_dirty();
        let faults = self_minor_faults();
        let best = program.best_of(&mut vm, heap, symbols, runs.budget, runs.rounds);
        minor_faults = faults.zip(self_minor_faults()).map(|(a, b)| b - a);
        best
    }));
    let dirty_after = self_private_dirty();
    let mut w = [NONE; WORDS];
    w[0] = match &outcome {
        Ok(Ok(_)) => 0,
        Ok(Err(_)) => 1,
        Err(_) => 2,
    };
    let nanos = |t: Duration| u64::try_from(t.as_nanos()).unwrap_or(NONE - 1);
    if let Ok(Ok(Best { first, fastest })) = outcome {
        w[1] = u64::from(first.answer.is_some());
        w[2] = first.answer.unwrap_or(0) as u64;
        w[3..6].copy_from_slice(&[first.bytecodes, first.sends, nanos(first.time)]);
        w[6..9].copy_from_slice(&[fastest.bytecodes, fastest.sends, nanos(fastest.time)]);
    }
    w[9] = dirty_at_start.unwrap_or(NONE);
    w[10] = dirty_with_vm.unwrap_or(NONE);
    w[11] = dirty_after.unwrap_or(NONE);
    w[12] = minor_faults.unwrap_or(NONE);
    w
}

fn decode(bytes: [u8; WORDS * 8]) -> ChildReport {
    let mut w = [0u64; WORDS];
    for (word, chunk) in w.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_le_bytes(b);
    }
    let known = |x: u64| (x != NONE).then_some(x);
    let answer = (w[1] == 1).then_some(w[2] as i64);
    let outcome_at = |i: usize| Outcome {
        answer,
        bytecodes: w[i],
        sends: w[i + 1],
        time: Duration::from_nanos(w[i + 2]),
    };
    let outcome = match w[0] {
        0 => Ok(Best {
            first: outcome_at(3),
            fastest: outcome_at(6),
        }),
        1 => Err(ChildFailure::Vm),
        _ => Err(ChildFailure::Panicked),
    };
    ChildReport {
        outcome,
        dirty_at_start: known(w[9]),
        dirty_with_vm: known(w[10]),
        dirty_after: known(w[11]),
        minor_faults: known(w[12]),
    }
}

/// Forks a child that runs `work`, writes its words to a pipe and exits; answers the child's
/// pid and the pipe's reading end.
fn fork_child(work: impl FnOnce() -> [u64; WORDS]) -> std::io::Result<(libc::pid_t, PipeReader)> {
    let (reader, mut writer) = std::io::pipe()?;
    // SAFETY: `fork` takes no argument. The child runs only code that is sound after a fork
    // of this process (see the module doc: no standard-library lock, glibc's malloc made
    // consistent by `fork` itself) and never returns from the branch below: it ends in
    // `_exit`, so it runs no destructor and flushes no buffer of the parent's.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(reader);
        let words = work();
        let mut bytes = [0u8; WORDS * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let code = i32::from(writer.write_all(&bytes).is_err());
        // SAFETY: `_exit` takes an exit code and ends the child at once, without the atexit
        // handlers and destructors that belong to the parent's copy of the program's state.
        unsafe { libc::_exit(code) }
    }
    drop(writer);
    Ok((pid, reader))
}

/// Waits for child `pid` to end, retrying on interruption, and answers its wait status.
fn reap(pid: libc::pid_t) -> std::io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `pid` is a child of this process not reaped yet, and `status` is a
        // writable `c_int` for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// This process's `Private_Dirty` in bytes, from `/proc/self/smaps_rollup`, read into a
/// buffer on the stack (the reading allocates nothing, so it dirties no heap page).
pub(crate) fn self_private_dirty() -> Option<u64> {
    let mut buf = [0u8; 4096];
    let mut file = std::fs::File::open("/proc/self/smaps_rollup").ok()?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    kib_field(std::str::from_utf8(&buf[..n]).ok()?, "Private_Dirty:")
}

/// This process's minor page faults so far, from `/proc/self/stat` read into a buffer on the
/// stack.
pub(crate) fn self_minor_faults() -> Option<u64> {
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::open("/proc/self/stat").ok()?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    // After the command name (which may hold spaces) fields start at 3, `state`; `minflt` is
    // field 10.
    text.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}

/// The value of a `Name:   123 kB` line of a `/proc` file, in bytes.
pub(crate) fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The number of threads of this process, from `/proc/self/status`.
pub(crate) fn thread_count() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// This process's resident set in bytes, from `/proc/self/status`.
pub(crate) fn self_rss() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmRSS:",
    )
}
