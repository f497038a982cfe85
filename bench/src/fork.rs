//! The operating system's copy-on-write: a child process per tenant, by `fork()`.
//!
//! Each tenant is a child process that inherits the base as a plain heap ([`FlatHeap`]) and
//! makes the tenant's writes in it; the kernel copies each 4 KiB page on its first write. What
//! a tenant costs is the child's `Private_Dirty` from `/proc/<pid>/smaps_rollup`, read by the
//! parent while the child waits, and the time `fork()` takes.
//!
//! # Why a probe process
//!
//! Forking a process that has other threads, and then allocating or taking a lock in the
//! child, can deadlock or worse: the other threads may hold the allocator's locks at the
//! moment of the fork, and they do not exist in the child to release them. The bench runs
//! worker threads, so it does not fork itself. It starts its own executable again as
//! `cowheap __fork-probe` ([`run_probe`]), which reads a [`ProbeRequest`] as JSON on standard
//! input, checks that it has a single thread, builds the same plain heap and the same
//! workload (same seed, same work), and forks one child at a time ([`probe_main`]). It writes
//! one JSON [`ProbeMessage`] per line on standard output.
//!
//! Each child: makes its reads, writes and reads again under the clock, sends the timings
//! over a socket, and waits. The parent then reads the child's `smaps_rollup`, tells it to
//! exit, and reaps it. The parent touches as little memory as it can between the fork and the
//! reading, since every page it writes leaves the original page to the child alone, where it
//! would count as the child's. What a child that writes nothing still dirties (its stack, the
//! C library's state after a fork) is part of what a fork costs; the sweep's point at 0 writes
//! shows it.
//!
//! Linux only (`/proc`); elsewhere the probe reports an error and the bench skips fork().
#![allow(
    unsafe_code,
    reason = "fork(), waitpid(), kill(), _exit() and sysconf() are foreign functions"
)]

use super::plain::FlatHeap;
use super::proc_status::{kib_field, self_rss};
use super::progress::Progress;
use super::workload::{Op, Workload, WorkloadConfig, checksum_of};
use super::{BaseSource, Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What the probe process is asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum ProbeRequest {
    /// Fill a buffer of `buffer_pages` pages, then for each of `counts` fork a child that
    /// writes one byte into each of that many pages: a check of the measurement itself.
    Pages {
        /// Pages in the buffer; every count must be at most this.
        buffer_pages: usize,
        /// Pages each child writes, one child per count.
        counts: Vec<usize>,
    },
    /// The bench workload on a plain copy of the base.
    Workload {
        /// The base, built or opened again in the probe.
        base: BaseSource,
        /// The workload, exactly as the other comparators run it.
        workload: WorkloadConfig,
        /// Tenants `0..tenants` run as children, one at a time, each making its own writes.
        tenants: usize,
        /// Working tenants whose reads the children share out: child `k` makes the reads of
        /// tenants `k`, `k + tenants`, ... below `readers`, so the fork() read columns cover
        /// the same reads as the in-process comparators'. Reads dirty no page, so a child's
        /// `Private_Dirty` stays its own tenant's.
        readers: usize,
        /// The memory sweep's write counts.
        write_counts: Vec<usize>,
        /// Children per write count.
        sweep_samples: usize,
        /// Times each read pass runs in a child; the fastest counts.
        read_repeats: usize,
    },
}

/// One line of the probe's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeMessage {
    /// Another child is done.
    Progress {
        /// Children done so far.
        done: u64,
        /// Children in all.
        total: u64,
    },
    /// The results; the last line.
    Done(ProbeReport),
    /// The probe failed; the last line.
    Failed {
        /// Why.
        error: String,
    },
}

/// What one child did and cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// The workload tenant the child played (or the page count, for [`ProbeRequest::Pages`]).
    pub tenant: u64,
    /// Reads made in each read pass.
    pub reads: u64,
    /// Writes made.
    pub writes: u64,
    /// Nanoseconds the parent spent in `fork()`.
    pub fork_ns: u64,
    /// The child's `Private_Dirty`, in bytes, after its work.
    pub private_dirty: u64,
    /// Nanoseconds of the first read pass, on the pages it shares with the parent.
    pub read_ns: u64,
    /// Nanoseconds of the writes, including the page faults that copy pages.
    pub write_ns: u64,
    /// Nanoseconds of the second read pass, after the writes.
    pub read_after_ns: u64,
    /// Checksum of the second read pass.
    pub checksum: u64,
}

/// Everything the probe measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Milliseconds the probe spent building the base, its plain copy and the workload.
    pub setup_ms: f64,
    /// Bytes of the plain heap every child inherits.
    pub heap_bytes: u64,
    /// The probe process's resident set when it forked, in bytes.
    pub parent_rss: u64,
    /// The workload's children, tenant by tenant.
    pub tenants: Vec<ChildReport>,
    /// The sweep's children, by write count then sample.
    pub sweep: Vec<ChildReport>,
    /// The page children of [`ProbeRequest::Pages`], in the order of the counts.
    pub pages: Vec<ChildReport>,
}

/// Runs `exe __fork-probe` with `request` and collects its report, telling `progress` as each
/// child finishes. `exe` is the `cowheap` executable (`std::env::current_exe()` in the
/// command, `env!("CARGO_BIN_EXE_cowheap")` in a test).
pub fn run_probe(
    exe: &Path,
    request: &ProbeRequest,
    progress: &dyn Progress,
) -> Result<ProbeReport> {
    let io = |what: &'static str| move |source| Error::Io { what, source };
    let mut child = Command::new(exe)
        .arg("__fork-probe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("starting the fork probe"))?;
    let mut stdin = child.stdin.take().ok_or_else(|| probe_error("no stdin"))?;
    serde_json::to_writer(&mut stdin, request)?;
    stdin
        .write_all(b"\n")
        .map_err(io("writing to the fork probe"))?;
    drop(stdin);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| probe_error("no stdout"))?;
    let mut outcome = Err(probe_error("the probe ended without a report"));
    let mut done = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(io("reading the fork probe"))?;
        match serde_json::from_str::<ProbeMessage>(&line)? {
            ProbeMessage::Progress { done: now, .. } => {
                progress.advance(now.saturating_sub(done));
                done = now;
            }
            ProbeMessage::Done(report) => outcome = Ok(report),
            ProbeMessage::Failed { error } => outcome = Err(probe_error(&error)),
        }
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        // What the probe said on stderr only matters if it failed; a read error adds nothing.
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(io("waiting for the fork probe"))?;
    match outcome {
        Err(Error::Probe { reason }) if !status.success() || !stderr.is_empty() => Err(
            probe_error(&format!("{reason} ({status}; {})", stderr.trim())),
        ),
        other => other,
    }
}

fn probe_error(reason: &str) -> Error {
    Error::Probe {
        reason: reason.to_owned(),
    }
}

/// Measures children that write one byte into each of `counts[i]` distinct pages of a buffer
/// their parent filled: the measurement checked against a known answer. Returns each child's
/// `Private_Dirty` in bytes, in the order of `counts`.
///
/// ```no_run
/// let exe = std::path::Path::new("target/release/cowheap");
/// let dirty = cowheap_bench::fork::probe_pages(exe, &[0, 1000]).unwrap();
/// let page = cowheap_bench::fork::page_size() as u64;
/// assert!(dirty[1] - dirty[0] >= 1000 * page);
/// ```
pub fn probe_pages(exe: &Path, counts: &[usize]) -> Result<Vec<u64>> {
    let request = ProbeRequest::Pages {
        buffer_pages: counts.iter().copied().max().unwrap_or(0),
        counts: counts.to_vec(),
    };
    let report = run_probe(exe, &request, &())?;
    Ok(report.pages.iter().map(|c| c.private_dirty).collect())
}

/// The size of a memory page, in bytes.
pub fn page_size() -> usize {
    // SAFETY: sysconf takes a plain integer name and reads process-wide constants; it has no
    // pointer arguments and no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The body of `cowheap __fork-probe`: reads a [`ProbeRequest`] from `input` and writes
/// [`ProbeMessage`] lines to `output`. Must be called in a process with one thread (checked).
pub fn probe_main(input: impl Read, mut output: impl Write) -> Result<()> {
    let outcome = serde_json::from_reader::<_, ProbeRequest>(input)
        .map_err(Error::from)
        .and_then(|request| probe(&request, &mut output));
    let last = match outcome {
        Ok(report) => ProbeMessage::Done(report),
        Err(e) => ProbeMessage::Failed {
            error: e.to_string(),
        },
    };
    send(&mut output, &last)
}

fn send(output: &mut impl Write, message: &ProbeMessage) -> Result<()> {
    let io = |source| Error::Io {
        what: "writing the probe's report",
        source,
    };
    serde_json::to_writer(&mut *output, message)?;
    output.write_all(b"\n").map_err(io)?;
    output.flush().map_err(io)
}

fn probe(request: &ProbeRequest, output: &mut impl Write) -> Result<ProbeReport> {
    let t0 = Instant::now();
    let mut report = ProbeReport::default();
    match request {
        ProbeRequest::Pages {
            buffer_pages,
            counts,
        } => {
            let page = page_size();
            // One page more than asked, so that `buffer_pages` whole pages fit aligned. Filling
            // it with ones makes every page a real page of the parent's, shared after the fork.
            let mut buffer = vec![1u8; (buffer_pages + 1) * page];
            let start = buffer.as_ptr().align_offset(page);
            report.setup_ms = t0.elapsed().as_secs_f64() * 1e3;
            report.parent_rss = self_rss();
            for (i, &count) in counts.iter().enumerate() {
                if count > *buffer_pages {
                    return Err(probe_error("a page count is larger than the buffer"));
                }
                let child = measure_child(|| {
                    for p in 0..count {
                        buffer[start + p * page] = 2;
                    }
                    [0, count as u64, 0, 0, 0, 0]
                })?;
                report.pages.push(ChildReport {
                    tenant: count as u64,
                    ..child
                });
                send(
                    output,
                    &ProbeMessage::Progress {
                        done: i as u64 + 1,
                        total: counts.len() as u64,
                    },
                )?;
            }
        }
        ProbeRequest::Workload {
            base,
            workload,
            tenants,
            readers,
            write_counts,
            sweep_samples,
            read_repeats,
        } => {
            let (mut heap, workload) = {
                // Trust, not Full: full verification would start a thread pool (see
                // `BaseSource::load_with`); the bench verified the file before asking.
                let base = base.load_with(cowheap::heap::Verification::Trust)?;
                (FlatHeap::of(&base)?, Workload::new(&base, *workload)?)
            };
            report.setup_ms = t0.elapsed().as_secs_f64() * 1e3;
            report.heap_bytes = heap.memory_bytes() as u64;
            report.parent_rss = self_rss();
            let total = (tenants + write_counts.len() * sweep_samples) as u64;
            let mut done = 0;
            let (mut ops, mut reads, mut writes) = (Vec::new(), Vec::new(), Vec::new());
            let mut shared = Vec::new();
            for tenant in 0..*tenants as u64 {
                // Everything the child needs is made before the fork.
                workload.tenant_ops(tenant, &mut ops);
                reads.clear();
                writes.clear();
                for &op in &ops {
                    if op.is_write() {
                        writes.push(op);
                    } else {
                        reads.push(op);
                    }
                }
                shared.clear();
                for id in (tenant as usize..(*readers).max(*tenants)).step_by((*tenants).max(1)) {
                    workload.tenant_ops(id as u64, &mut ops);
                    shared.extend(ops.iter().copied().filter(|op| !op.is_write()));
                }
                let work = TenantWork {
                    reads: &shared,
                    own_reads: &reads,
                    writes: &writes,
                    repeats: *read_repeats,
                };
                let child = measure_child(|| work.run(&mut heap))?;
                report.tenants.push(ChildReport { tenant, ..child });
                done += 1;
                send(output, &ProbeMessage::Progress { done, total })?;
            }
            for &count in write_counts {
                for s in 0..*sweep_samples as u64 {
                    workload.tenant_writes(s, count, &mut writes);
                    let work = TenantWork {
                        reads: &[],
                        own_reads: &[],
                        writes: &writes,
                        repeats: 1,
                    };
                    let child = measure_child(|| work.run(&mut heap))?;
                    report.sweep.push(ChildReport { tenant: s, ..child });
                    done += 1;
                    send(output, &ProbeMessage::Progress { done, total })?;
                }
            }
        }
    }
    Ok(report)
}

/// A child's work: the reads, the writes, the reads again, timed; each read pass `repeats`
/// times, the fastest counting. The message a child sends: read ns, writes, write ns,
/// read-after ns, checksum, reads.
struct TenantWork<'a> {
    /// The reads of each read pass: its own tenant's and those of the tenants it shares out.
    reads: &'a [Op],
    /// Its own tenant's reads: their checksum after the writes is the fidelity check's.
    own_reads: &'a [Op],
    /// Its own tenant's writes.
    writes: &'a [Op],
    repeats: usize,
}

impl TenantWork<'_> {
    fn run(&self, heap: &mut FlatHeap) -> [u64; MESSAGE_WORDS] {
        let read_pass = |heap: &FlatHeap, reads: &[Op]| {
            let mut sum = 0u64;
            for &op in reads {
                if let Op::Read { object, slot } = op {
                    let w = heap.read(object, slot as usize).unwrap_or(0);
                    sum = sum.wrapping_add(checksum_of(cowheap::heap::Word::from_bits(w)));
                }
            }
            sum
        };
        // Each read pass starts with caches as cold as the other comparators' passes find them
        // (there, other tenants' work runs between a tenant's two passes): streaming through
        // the whole heap evicts the previous pass's lines, and reading dirties no page.
        let timed_reads = |heap: &FlatHeap| {
            if self.reads.is_empty() {
                return 0;
            }
            let mut best = u64::MAX;
            for _ in 0..self.repeats.max(1) {
                let sum = heap.words().iter().fold(0u64, |a, &w| a.wrapping_add(w));
                std::hint::black_box(sum);
                let t = Instant::now();
                std::hint::black_box(read_pass(heap, self.reads));
                best = best.min(t.elapsed().as_nanos() as u64);
            }
            best
        };
        let read_ns = timed_reads(heap);
        let t = Instant::now();
        for &op in self.writes {
            if let Op::Write {
                object,
                slot,
                value,
            } = op
            {
                // The workload only names slots that exist; a refused write would change
                // nothing.
                let _ = heap.write(object, slot as usize, value);
            }
        }
        let write_ns = t.elapsed().as_nanos() as u64;
        let read_after_ns = timed_reads(heap);
        let checksum = read_pass(heap, self.own_reads);
        [
            read_ns,
            self.writes.len() as u64,
            write_ns,
            read_after_ns,
            checksum,
            self.reads.len() as u64,
        ]
    }
}

/// Words in the message a child sends its parent.
const MESSAGE_WORDS: usize = 6;

/// How long the parent waits for a child's report before killing it.
const CHILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// The number of threads of this process, from `/proc/self/status`.
fn thread_count() -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|source| Error::Io {
        what: "reading /proc/self/status",
        source,
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| probe_error("/proc/self/status has no thread count"))
}

/// Forks a child that runs `work`, sends its result and waits; measures the child's
/// `Private_Dirty` while it waits; then lets it exit and reaps it.
fn measure_child(work: impl FnOnce() -> [u64; MESSAGE_WORDS]) -> Result<ChildReport> {
    if thread_count()? != 1 {
        return Err(probe_error(
            "the fork probe must run single-threaded, and this process has other threads",
        ));
    }
    let io = |what: &'static str| move |source| Error::Io { what, source };
    let (mut parent_end, mut child_end) =
        UnixStream::pair().map_err(io("making the probe's socket pair"))?;
    let t = Instant::now();
    // SAFETY: this process has exactly one thread (checked just above, and nothing since has
    // started one), so no lock of the allocator, stdio or anything else can be held by a
    // thread that will not exist in the child: the child may run ordinary Rust code. The child
    // never returns from this branch: it ends in `_exit`, so it runs no destructor and flushes
    // no buffer that belongs to the parent.
    let pid = unsafe { libc::fork() };
    let fork_ns = t.elapsed().as_nanos() as u64;
    if pid < 0 {
        return Err(Error::Io {
            what: "fork()",
            source: std::io::Error::last_os_error(),
        });
    }
    if pid == 0 {
        drop(parent_end);
        let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or([u64::MAX; MESSAGE_WORDS]);
        let mut bytes = [0u8; MESSAGE_WORDS * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(message) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let sent = child_end.write_all(&bytes);
        // Wait for the parent's word (or its end of the socket closing) before exiting.
        let mut go = [0u8; 1];
        let _ = child_end.read(&mut go);
        let code = i32::from(sent.is_err());
        // SAFETY: `_exit` ends the child at once, without running atexit handlers or Rust
        // destructors, which belong to the parent's copy of the program state; it is
        // async-signal-safe and takes only an exit code.
        unsafe { libc::_exit(code) }
    }
    drop(child_end);
    // Between the fork and the reading of smaps, the parent allocates nothing: the buffers
    // are on the stack, and the path is short enough for `File::open` to build on the stack.
    let mut message = [0u8; MESSAGE_WORDS * 8];
    let received = parent_end
        .set_read_timeout(Some(CHILD_TIMEOUT))
        .and_then(|()| parent_end.read_exact(&mut message));
    if received.is_err() {
        // SAFETY: `kill` takes plain integers; `pid` is our child and is not reaped yet, so
        // the number cannot belong to another process. A child that already ended ignores it.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut smaps = [0u8; 8192];
    let dirty = received
        .is_ok()
        .then(|| read_private_dirty(pid, &mut smaps));
    let _ = parent_end.write_all(&[1]);
    drop(parent_end);
    let status = reap(pid)?;
    received.map_err(|_| probe_error(&format!("the child died before reporting ({status:#x})")))?;
    let private_dirty = dirty
        .flatten()
        .ok_or_else(|| probe_error("could not read Private_Dirty from smaps_rollup"))?;
    let mut w = [0u64; MESSAGE_WORDS];
    for (i, chunk) in message.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        w[i] = u64::from_le_bytes(b);
    }
    if w == [u64::MAX; MESSAGE_WORDS] {
        return Err(probe_error("the child panicked"));
    }
    Ok(ChildReport {
        tenant: 0,
        read_ns: w[0],
        writes: w[1],
        write_ns: w[2],
        read_after_ns: w[3],
        checksum: w[4],
        reads: w[5],
        fork_ns,
        private_dirty,
    })
}

/// The `Private_Dirty` of process `pid` in bytes, read into `buf` without allocating.
fn read_private_dirty(pid: libc::pid_t, buf: &mut [u8]) -> Option<u64> {
    let mut path = [0u8; 64];
    let len = {
        let mut cursor = std::io::Cursor::new(&mut path[..]);
        write!(cursor, "/proc/{pid}/smaps_rollup").ok()?;
        cursor.position() as usize
    };
    let path = std::str::from_utf8(&path[..len]).ok()?;
    let mut file = std::fs::File::open(path).ok()?;
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

/// Waits for child `pid` to end, retrying on interruption, and returns its wait status.
fn reap(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: `pid` is a child of this process that has not been reaped yet, and `status`
        // is a valid, writable `c_int` for the duration of the call.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::Io {
                what: "waitpid()",
                source: e,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_parse_to_bytes() {
        let text = "Rss:     1234 kB\nPrivate_Dirty:      12 kB\n";
        assert_eq!(kib_field(text, "Private_Dirty:"), Some(12 * 1024));
        assert_eq!(kib_field(text, "Rss:"), Some(1234 * 1024));
        assert_eq!(kib_field(text, "Swap:"), None);
    }

    #[test]
    fn requests_round_trip_as_json() {
        let r = ProbeRequest::Pages {
            buffer_pages: 3,
            counts: vec![0, 3],
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ProbeRequest>(&text).unwrap(), r);
    }

    #[test]
    fn a_child_reads_every_shared_read_and_checks_its_own_after_its_writes() {
        let base = cowheap::synth::image(2_000, 1);
        let x = base.root("Smalltalk").unwrap().as_base().unwrap();
        let mut heap = FlatHeap::of(&base).unwrap();
        let read = |slot| Op::Read { object: x, slot };
        let own = [read(0), read(1)];
        let shared = [read(0), read(1), read(2), read(0), read(1)];
        let writes = [Op::Write {
            object: x,
            slot: 0,
            value: 41,
        }];
        let work = TenantWork {
            reads: &shared,
            own_reads: &own,
            writes: &writes,
            repeats: 2,
        };
        let [_, n_writes, _, _, checksum, reads] = work.run(&mut heap);
        assert_eq!((reads, n_writes), (5, 1));
        let after = |slot| checksum_of(cowheap::heap::Word::from_bits(heap.read(x, slot).unwrap()));
        assert_eq!(after(0), 41);
        assert_eq!(checksum, after(0).wrapping_add(after(1)));
    }
}
