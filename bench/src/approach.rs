//! What every in-process comparator provides, and the passes the bench runs on it.
//!
//! An [`Approach`] forks tenants and reads and writes base objects through them. The bench
//! runs the same passes on each: fork the tenants on one thread ([`fork_all`]), then, on the
//! worker threads, each working tenant's reads, its writes, and its reads again
//! ([`run_pass`]); then the memory sweep ([`sweep`]). Operations are generated before the
//! clock starts, and a tenant's allocations are measured on the thread that works it
//! ([`Meter`]), so neither the generator nor other threads blur the figures.

use super::alloc::Meter;
use super::progress::Progress;
use super::workload::{Op, Workload, checksum_of};
use super::{Error, Result};
use cowheap::heap::{ObjectIndex, Word};
use std::time::{Duration, Instant};

/// A way to give many tenants a view of one base: cowheap tenants, one shared plain heap, a
/// deep copy per tenant, a persistent vector per tenant.
///
/// ```
/// use cowheap_bench::Approach;
/// use cowheap_bench::plain::PlainHeap;
///
/// let base = cowheap::synth::image(2_000, 1);
/// let heap = PlainHeap::of(&base).unwrap();
/// let x = base.root("Smalltalk").unwrap().as_base().unwrap();
/// let mut t = Approach::fork(&heap).unwrap();
/// Approach::write(&heap, &mut t, x, 0, 9).unwrap();
/// assert_eq!(Approach::read(&heap, &mut t, x, 0).unwrap().as_int(), Some(9));
/// ```
pub trait Approach: Sync {
    /// What one tenant holds of its own.
    type Tenant: Send;

    /// A new tenant of the base.
    fn fork(&self) -> Result<Self::Tenant>;

    /// Pointer slot `slot` of base object `object`, as `tenant` sees it.
    fn read(&self, tenant: &mut Self::Tenant, object: ObjectIndex, slot: u32) -> Result<Word>;

    /// A run of reads in a row (every [`Op::Read`] of `ops`; any other op is ignored), as
    /// `tenant` sees them: the wrapping sum of their [`checksum_of`]s. The default makes
    /// them one [`Approach::read`] at a time; an approach with a faster way to make many
    /// reads in a row (cowheap's [`cowheap::tenants::TenantReader`]) overrides it.
    fn reads(&self, tenant: &mut Self::Tenant, ops: &[Op]) -> Result<u64> {
        let mut sum = 0u64;
        for &op in ops {
            if let Op::Read { object, slot } = op {
                sum = sum.wrapping_add(checksum_of(self.read(tenant, object, slot)?));
            }
        }
        Ok(sum)
    }

    /// Stores the small integer `value` in pointer slot `slot` of `object`, in `tenant`'s view.
    fn write(
        &self,
        tenant: &mut Self::Tenant,
        object: ObjectIndex,
        slot: u32,
        value: i64,
    ) -> Result<()>;
}

/// What forking the tenants cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkStats {
    /// Tenants forked.
    pub tenants: usize,
    /// Time for all of them.
    pub time: Duration,
    /// Bytes they hold: what the forks allocated plus each tenant's record.
    pub bytes: i64,
}

/// Forks `n` tenants on this thread and keeps them. The bytes include the vector that holds
/// them, that is each tenant's record. Time: O(n) forks.
///
/// # Errors
/// [`Error::BadOption`] (`--tenants`) if the vector for `n` tenants cannot be had, before
/// any is forked; an approach's own fork error.
///
/// ```
/// use cowheap_bench::{Error, approach::fork_all, cow::Cowheap};
///
/// let heap = Cowheap::new(cowheap::Base::new(cowheap::synth::image(1_000, 1)));
/// let (tenants, stats) = fork_all(&heap, 3, &()).unwrap();
/// assert_eq!((tenants.len(), stats.tenants), (3, 3));
/// assert!(matches!(fork_all(&heap, 1 << 50, &()), Err(Error::BadOption { .. })));
/// ```
pub fn fork_all<A: Approach>(
    approach: &A,
    n: usize,
    progress: &dyn Progress,
) -> Result<(Vec<A::Tenant>, ForkStats)> {
    let meter = Meter::start();
    let t0 = Instant::now();
    let mut tenants = Vec::new();
    tenants.try_reserve_exact(n).map_err(|_| Error::BadOption {
        option: "tenants",
        reason: format!("no memory for {n} tenants"),
    })?;
    for i in 0..n {
        tenants.push(approach.fork()?);
        if i % 4096 == 4095 {
            progress.advance(4096);
        }
    }
    let time = t0.elapsed();
    progress.advance((n % 4096) as u64);
    let bytes = meter.bytes();
    Ok((
        tenants,
        ForkStats {
            tenants: n,
            time,
            bytes,
        },
    ))
}

/// Which of a tenant's operations a pass applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Only the reads.
    Reads,
    /// Only the writes.
    Writes,
}

/// What one pass over the working tenants did and cost.
#[derive(Clone, Debug, Default)]
pub struct PassStats {
    /// Operations applied.
    pub ops: u64,
    /// Time spent applying them, summed over the threads.
    pub busy: Duration,
    /// Time from the start of the pass to its end.
    pub wall: Duration,
    /// Bytes the tenants allocated during the pass (on the threads that worked them).
    pub bytes: i64,
    /// Checksum of every read, per tenant, in tenant order ([`checksum_of`]).
    pub checksums: Vec<u64>,
}

impl PassStats {
    /// Million operations per second per thread: operations over busy time.
    pub fn mops(&self) -> f64 {
        let s = self.busy.as_secs_f64();
        if s > 0.0 {
            self.ops as f64 / s / 1e6
        } else {
            0.0
        }
    }
}

/// Applies `ops` to `tenant`, returning the checksum of the reads: each run of reads in a
/// row through [`Approach::reads`], each write through [`Approach::write`].
#[inline]
fn apply<A: Approach>(approach: &A, tenant: &mut A::Tenant, ops: &[Op]) -> Result<u64> {
    let mut sum = 0u64;
    let mut rest = ops;
    while let Some(&op) = rest.first() {
        match op {
            Op::Read { .. } => {
                let run = rest
                    .iter()
                    .position(|op| !matches!(op, Op::Read { .. }))
                    .unwrap_or(rest.len());
                sum = sum.wrapping_add(approach.reads(tenant, &rest[..run])?);
                rest = &rest[run..];
            }
            Op::Write {
                object,
                slot,
                value,
            } => {
                approach.write(tenant, object, slot, value)?;
                rest = &rest[1..];
            }
        }
    }
    Ok(sum)
}

/// What one thread of a pass did: its counts, and `(workload tenant, checksum)` pairs.
type Share = (PassStats, Vec<(usize, u64)>);

/// Runs `pass` for workload tenants `0..work` on `threads` threads. Workload tenant `id` is
/// worked on `tenants[id % tenants.len()]`: with as many tenants as `work` that is one each;
/// a comparator that holds fewer (the deep copies) works every workload tenant's operations
/// all the same, each of its tenants taking several workload tenants in turn, so every
/// comparator makes the same operations on the same objects. Each thread takes a contiguous
/// share of `tenants`. Each workload tenant's operations are generated, then applied under
/// the clock and the thread's allocation meter. The checksums are in workload tenant order.
/// A thread the system refuses to start is [`Error::Io`] (the threads started finish first).
pub fn run_pass<A: Approach>(
    approach: &A,
    tenants: &mut [A::Tenant],
    work: usize,
    workload: &Workload,
    pass: Pass,
    threads: usize,
    progress: &dyn Progress,
) -> Result<PassStats> {
    let t0 = Instant::now();
    let held = tenants.len().max(1);
    let chunk = tenants.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Result<Share>> = std::thread::scope(|s| {
        let mut workers = Vec::new();
        let mut refused = None;
        for (c, share) in tenants.chunks_mut(chunk).enumerate() {
            let spawned = std::thread::Builder::new().spawn_scoped(s, move || {
                let mut stats = PassStats::default();
                let mut sums = Vec::new();
                let (mut ops, mut picked) = (Vec::new(), Vec::new());
                for (j, tenant) in share.iter_mut().enumerate() {
                    for id in (c * chunk + j..work).step_by(held) {
                        workload.tenant_ops(id as u64, &mut ops);
                        picked.clear();
                        picked.extend(
                            ops.iter()
                                .filter(|op| op.is_write() == (pass == Pass::Writes)),
                        );
                        let meter = Meter::start();
                        let t = Instant::now();
                        let sum = apply(approach, tenant, &picked)?;
                        stats.busy += t.elapsed();
                        stats.bytes += meter.bytes();
                        stats.ops += picked.len() as u64;
                        sums.push((id, sum));
                        progress.advance(1);
                    }
                }
                Ok((stats, sums))
            });
            match spawned {
                Ok(worker) => workers.push(worker),
                // The system refused a thread (too many, no memory for its stack): the
                // threads started finish their shares, and the pass fails.
                Err(source) => {
                    refused = Some(Error::Io {
                        what: "starting a worker thread",
                        source,
                    });
                    break;
                }
            }
        }
        let joined = workers
            .into_iter()
            .map(|w| w.join().unwrap_or(Err(Error::WorkerPanicked)));
        refused.map(Err).into_iter().chain(joined).collect()
    });
    let mut total = PassStats::default();
    let mut sums = Vec::with_capacity(work);
    for r in results {
        let (s, mut part) = r?;
        total.ops += s.ops;
        total.busy += s.busy;
        total.bytes += s.bytes;
        sums.append(&mut part);
    }
    sums.sort_unstable_by_key(|&(id, _)| id);
    total.checksums = sums.into_iter().map(|(_, sum)| sum).collect();
    total.wall = t0.elapsed();
    Ok(total)
}

/// The checksum of workload tenant `id`'s reads made after its own writes, on a fresh tenant
/// of its own: what [`run_pass`] gives for `id` when no other workload tenant shares its
/// tenant. Untimed; for the fidelity check of a comparator whose tenants work several
/// workload tenants each.
pub fn isolated_checksum<A: Approach>(approach: &A, workload: &Workload, id: u64) -> Result<u64> {
    let mut ops = Vec::new();
    workload.tenant_ops(id, &mut ops);
    let mut tenant = approach.fork()?;
    let writes: Vec<Op> = ops.iter().copied().filter(|op| op.is_write()).collect();
    let reads: Vec<Op> = ops.iter().copied().filter(|op| !op.is_write()).collect();
    apply(approach, &mut tenant, &writes)?;
    apply(approach, &mut tenant, &reads)
}

/// One point of the memory sweep: what a tenant holds after some number of writes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepPoint {
    /// Writes the tenant made ([`Workload::tenant_writes`]).
    pub writes: usize,
    /// Private bytes per tenant (mean over the samples): the fork, its record and the
    /// writes, or for fork() the child's Private_Dirty.
    pub bytes: f64,
    /// Tenants measured.
    pub samples: usize,
}

/// For each write count, forks `samples` fresh tenants, makes that many writes in each, and
/// measures what each holds (fork, record and writes); the tenants are dropped after.
pub fn sweep<A: Approach>(
    approach: &A,
    workload: &Workload,
    counts: &[usize],
    samples: usize,
    progress: &dyn Progress,
) -> Result<Vec<SweepPoint>> {
    let mut points = Vec::with_capacity(counts.len());
    let mut ops = Vec::new();
    for &writes in counts {
        let mut total = 0i64;
        for s in 0..samples {
            workload.tenant_writes(s as u64, writes, &mut ops);
            let meter = Meter::start();
            let mut t = approach.fork()?;
            apply(approach, &mut t, &ops)?;
            total += meter.bytes() + std::mem::size_of::<A::Tenant>() as i64;
            drop(t);
            progress.advance(1);
        }
        points.push(SweepPoint {
            writes,
            bytes: total as f64 / samples.max(1) as f64,
            samples,
        });
    }
    Ok(points)
}
