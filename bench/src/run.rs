//! The bench from end to end: build the base, run every comparator, gather the report.

use super::approach::{
    Approach, ForkStats, Pass, PassStats, SweepPoint, fork_all, isolated_checksum, run_pass, sweep,
};
use super::cow::{BaseReads, Cowheap};
use super::deep_copy::DeepCopy;
#[cfg(unix)]
use super::fork::{ProbeRequest, run_probe};
use super::plain::PlainHeap;
use super::proc_status::{self_rss, status_field};
use super::progress::Progress;
use super::report::{ApproachReport, BaseInfo, Fidelity, Report, count};
use super::rpds::Rpds;
use super::workload::Workload;
use super::{ApproachKind, BaseSource, Config, Result, SYNTHETIC_BYTES_PER_OBJECT};
use cowheap::BaseHeap;
use cowheap::forwarders::Base;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many tenants' read checksums each comparator keeps for the fidelity check.
const CHECKED_TENANTS: usize = 16;

/// Runs the bench `config` describes, telling `progress` what it does. Time: dominated by
/// building the base and by the deep copies; see the command's README section for figures.
///
/// Fails on a bad option, on `BaseSource::File` (image files are not supported yet), or if a
/// comparator fails; a fork probe that cannot run (no executable, not Linux) is reported as
/// skipped instead.
pub fn run(config: &Config, progress: &dyn Progress) -> Result<Report> {
    config.validate()?;
    // A synthetic base is checked before it is built (a big one takes minutes), a file
    // once it is open (its size in objects is known only then).
    if let BaseSource::Synthetic { objects, .. } = config.base {
        let objects = objects as u64;
        config.check_memory(objects.saturating_mul(SYNTHETIC_BYTES_PER_OBJECT), objects)?;
    }
    let started = Instant::now();
    progress.stage("building the base", 1);
    let t0 = Instant::now();
    let base = Base::new(config.base.load()?);
    let build = t0.elapsed();
    if let BaseSource::File(_) = config.base {
        let heap = base.heap();
        config.check_memory(heap.memory_bytes() as u64, heap.len() as u64)?;
    }
    let workload = Workload::new(base.heap(), config.workload)?;
    progress.advance(1);

    let mut counts: Vec<usize> = config
        .write_counts
        .iter()
        .map(|&c| c.min(workload.candidates()))
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let ctx = Context {
        evict: Evict::new(),
        config,
        workload: &workload,
        counts: &counts,
        progress,
    };

    // The in-process comparators are made and their tenants forked first, and held
    // together: each pass then takes every comparator in turn, so that a phase of the
    // machine (what else runs on it, how fast its cores run) falls on all of them alike,
    // not on whichever one ran then.
    let mut positions = Vec::new();
    let mut held: Vec<Box<dyn Running + '_>> = Vec::new();
    for (i, &kind) in config.approaches.iter().enumerate() {
        held.push(match kind {
            ApproachKind::Cowheap => Box::new(ctx.cowheap(&base)?),
            ApproachKind::Plain => Box::new(ctx.plain(base.heap())?),
            ApproachKind::DeepCopy => Box::new(ctx.deep_copy(base.heap())?),
            ApproachKind::Rpds => Box::new(ctx.rpds(base.heap())?),
            ApproachKind::Fork => continue,
        });
        positions.push(i);
    }
    // cowheap's yardstick, the same reads straight from the base heap with no tenant,
    // takes its turn in the first read pass, after the comparators.
    let cowheap = positions
        .iter()
        .position(|&i| config.approaches[i] == ApproachKind::Cowheap);
    if let Some(c) = cowheap {
        let plan = Plan {
            create: 0,
            work: held[c].work(),
            ..Plan::all(config, 0)
        };
        held.push(Box::new(Held::start_as(
            &ctx,
            "base heap, no tenant",
            ApproachKind::Cowheap,
            BaseReads(base.heap()),
            plan,
        )?));
    }
    let repeats = config.read_repeats.max(1);
    let mut reads = ctx.take_turns(&mut held, "reads", Pass::Reads, repeats)?;
    let base_reads = if cowheap.is_some() {
        held.pop();
        reads.pop()
    } else {
        None
    };
    let writes = ctx.take_turns(&mut held, "writes", Pass::Writes, 1)?;
    let after = ctx.take_turns(&mut held, "reads after writes", Pass::Reads, repeats)?;

    let mut reports: Vec<Option<ApproachReport>> = vec![None; config.approaches.len()];
    let passes = reads.into_iter().zip(writes).zip(after);
    for (k, (h, ((r, w), a))) in held.into_iter().zip(passes).enumerate() {
        let mut report = h.finish(&ctx, r, w, a)?;
        if config.approaches[positions[k]] == ApproachKind::Cowheap {
            report.base_read_mops = base_reads.as_ref().and_then(mops);
        }
        reports[positions[k]] = Some(report);
    }
    for (i, &kind) in config.approaches.iter().enumerate() {
        if kind == ApproachKind::Fork {
            reports[i] = Some(ctx.fork());
        }
    }
    let approaches: Vec<ApproachReport> = reports.into_iter().flatten().collect();
    let fidelity = Fidelity::of(&approaches);
    Ok(Report {
        config: config.clone(),
        base: BaseInfo {
            source: config.base.describe(),
            objects: base.heap().len(),
            bytes: base.heap().memory_bytes() as u64,
            build_ms: build.as_secs_f64() * 1e3,
            candidates: workload.candidates(),
        },
        active: config.active_tenants(),
        write_counts: counts,
        approaches,
        fidelity,
        elapsed_s: started.elapsed().as_secs_f64(),
        peak_rss: status_field("VmHWM:").unwrap_or(0),
    })
}

/// How many tenants a comparator forks and works, and what its shared part cost.
struct Plan {
    /// Tenants forked and held at once.
    create: usize,
    /// Workload tenants worked: with `reuse`, all of them on the `create` tenants held, each
    /// held tenant taking several in turn; otherwise the first `work` tenants forked.
    work: usize,
    /// The held tenants work every workload tenant ([`run_pass`]), so that the comparator
    /// makes the same operations as the others with fewer tenants (the deep copies).
    reuse: bool,
    /// Time to build the comparator's shared part.
    setup: Duration,
    /// Bytes of the shared part.
    shared_bytes: u64,
    /// A note for the table.
    note: Option<String>,
}

impl Plan {
    /// Every tenant forked, the active ones worked.
    fn all(config: &Config, shared_bytes: u64) -> Plan {
        Plan {
            create: config.workload.tenants,
            work: config.active_tenants(),
            reuse: false,
            setup: Duration::ZERO,
            shared_bytes,
            note: None,
        }
    }
}

/// A buffer twice the size of a large last-level cache. Reading it through before a pass
/// leaves the caches as cold as a pass over many tenants finds them, whatever the previous
/// pass touched: without it, a comparator with few tenants (the deep copies) would re-read
/// lines its previous pass left in the cache.
struct Evict(Vec<u64>);

impl Evict {
    const BYTES: usize = 64 << 20;

    fn new() -> Evict {
        // Ones, not zeros: untouched zero pages all map one physical page and evict nothing.
        Evict(vec![1; Self::BYTES / 8])
    }

    fn run(&self) {
        std::hint::black_box(self.0.iter().fold(0u64, |a, &w| a.wrapping_add(w)));
    }
}

/// What every comparator's run shares.
struct Context<'a> {
    evict: Evict,
    config: &'a Config,
    workload: &'a Workload,
    counts: &'a [usize],
    progress: &'a dyn Progress,
}

impl Context<'_> {
    /// cowheap's tenants.
    fn cowheap(&self, base: &Arc<Base>) -> Result<Held<Cowheap>> {
        let cowheap = Cowheap::new(base.clone());
        let plan = Plan::all(self.config, base.memory_bytes() as u64);
        Held::start(self, ApproachKind::Cowheap, cowheap, plan)
    }

    /// One plain heap that every tenant writes: the floor, with no isolation.
    fn plain(&self, heap: &BaseHeap) -> Result<Held<PlainHeap>> {
        let t0 = Instant::now();
        let plain = PlainHeap::of(heap)?;
        // A "tenant" of the plain heap is nothing: `create: 0` reports none held.
        let plan = Plan {
            create: 0,
            setup: t0.elapsed(),
            shared_bytes: plain.memory_bytes() as u64,
            note: Some("one heap that every tenant writes: no isolation".to_owned()),
            ..Plan::all(self.config, 0)
        };
        Held::start(self, ApproachKind::Plain, plain, plan)
    }

    /// A sample of full deep copies, which work every working tenant's operations in turn.
    fn deep_copy(&self, heap: &BaseHeap) -> Result<Held<DeepCopy>> {
        let t0 = Instant::now();
        let copies = DeepCopy::of(heap)?;
        let n = self
            .config
            .deep_copy_sample
            .min(self.config.active_tenants());
        let work = self.config.active_tenants();
        let plan = Plan {
            create: n,
            work,
            reuse: true,
            setup: t0.elapsed(),
            shared_bytes: copies.copy_bytes() as u64,
            note: (n < self.config.workload.tenants).then(|| {
                format!(
                    "{n} copies held of {} tenants (each is a full copy of the base); the \
                     copies make every working tenant's operations in turn (copy i % {n} \
                     works tenant i), so its reads are the same {} tenants' reads as \
                     cowheap's, though {n} copies stay warmer in the caches than {} would; \
                     fidelity from fresh copies",
                    count(self.config.workload.tenants as u64),
                    count(work as u64),
                    count(work as u64),
                )
            }),
        };
        Held::start(self, ApproachKind::DeepCopy, copies, plan)
    }

    /// A persistent vector cloned per tenant.
    fn rpds(&self, heap: &BaseHeap) -> Result<Held<Rpds>> {
        self.progress
            .stage("rpds: building the persistent vector", 1);
        let t0 = Instant::now();
        let rpds = Rpds::of(heap)?;
        self.progress.advance(1);
        let plan = Plan {
            setup: t0.elapsed(),
            ..Plan::all(self.config, 0)
        };
        Held::start(self, ApproachKind::Rpds, rpds, plan)
    }

    /// `times` rounds of one pass of every comparator of `held`, in turn, the caches
    /// evicted before each; for each comparator the pass of least busy time, in the order
    /// of `held`. Read passes change nothing a later pass sees, so a read pass can run
    /// `read_repeats` times and the fastest count: what other processes on the machine take
    /// is not the reads' cost.
    fn take_turns(
        &self,
        held: &mut [Box<dyn Running + '_>],
        what: &str,
        pass: Pass,
        times: usize,
    ) -> Result<Vec<PassStats>> {
        let steps: usize = held.iter().map(|h| h.work()).sum();
        self.progress.stage(
            &format!("{what}, every comparator in turn"),
            count64(steps).saturating_mul(count64(times)),
        );
        let mut best: Vec<Option<PassStats>> = vec![None; held.len()];
        for _ in 0..times {
            for (h, best) in held.iter_mut().zip(&mut best) {
                self.evict.run();
                let stats = h.pass(self, pass)?;
                if best.as_ref().is_none_or(|b| stats.busy < b.busy) {
                    *best = Some(stats);
                }
            }
        }
        Ok(best.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// fork(): where there is no fork(), say so.
    #[cfg(not(unix))]
    fn fork(&self) -> ApproachReport {
        ApproachReport::skipped(ApproachKind::Fork, "fork() exists on Unix only".to_owned())
    }

    /// fork(): run the probe, or report why it was skipped.
    #[cfg(unix)]
    fn fork(&self) -> ApproachReport {
        let kind = ApproachKind::Fork;
        let config = self.config;
        let n = config.fork_sample.min(config.active_tenants());
        let mut report = ApproachReport::skipped(kind, String::new());
        let Some(exe) = &config.probe_exe else {
            report.skipped = Some("no cowheap executable to run the fork probe".to_owned());
            return report;
        };
        let request = ProbeRequest::Workload {
            base: config.base.clone(),
            workload: config.workload,
            tenants: n,
            readers: config.active_tenants(),
            write_counts: self.counts.to_vec(),
            sweep_samples: config.sweep_samples,
            read_repeats: config.read_repeats.max(1),
        };
        self.progress.stage(
            "fork(): building the base in the probe, then one child per tenant",
            count64(n).saturating_add(
                count64(self.counts.len()).saturating_mul(count64(config.sweep_samples)),
            ),
        );
        let probe = match run_probe(exe, &request, self.progress) {
            Ok(p) => p,
            Err(e) => {
                report.skipped = Some(e.to_string());
                return report;
            }
        };
        let children = &probe.tenants;
        let sum = |f: fn(&super::fork::ChildReport) -> u64| children.iter().map(f).sum::<u64>();
        let rate = |ops: u64, ns: u64| (ops > 0 && ns > 0).then(|| ops as f64 / ns as f64 * 1e3);
        let mean = |xs: &mut dyn Iterator<Item = u64>| {
            let (s, c) = xs.fold((0u64, 0u64), |(s, c), x| (s + x, c + 1));
            (c > 0).then(|| s as f64 / c as f64)
        };
        let sweep: Vec<SweepPoint> = self
            .counts
            .iter()
            .map(|&writes| {
                let dirty = probe
                    .sweep
                    .iter()
                    .filter(|c| c.writes == writes as u64)
                    .map(|c| c.private_dirty);
                let samples = dirty.clone().count();
                SweepPoint {
                    writes,
                    bytes: mean(&mut dirty.clone()).unwrap_or(0.0),
                    samples,
                }
            })
            .collect();
        let all_forks = children.iter().chain(&probe.sweep).map(|c| c.fork_ns);
        report.skipped = None;
        report.held = 1;
        report.worked = children.len();
        report.note = Some(format!(
            "{} of {} tenants, one child process at a time, each making its own tenant's \
             writes (bytes are its Private_Dirty); the children share out the reads of all {} \
             working tenants (child k reads tenants k, k + {}, ...), so the read columns cover \
             the same reads as the others'",
            children.len(),
            count(config.workload.tenants as u64),
            count(config.active_tenants() as u64),
            children.len(),
        ));
        report.setup_ms = probe.setup_ms;
        report.shared_bytes = probe.heap_bytes;
        report.create_ns = mean(&mut all_forks.clone());
        report.idle_bytes = sweep.iter().find(|p| p.writes == 0).map(|p| p.bytes);
        report.private_bytes = mean(&mut children.iter().map(|c| c.private_dirty));
        report.held_bytes = sum(|c| c.private_dirty);
        report.reads = sum(|c| c.reads);
        report.writes = sum(|c| c.writes);
        report.read_mops = rate(report.reads, sum(|c| c.read_ns));
        report.write_mops = rate(report.writes, sum(|c| c.write_ns));
        report.read_after_mops = rate(report.reads, sum(|c| c.read_after_ns));
        report.checksums = children
            .iter()
            .map(|c| c.checksum)
            .take(CHECKED_TENANTS)
            .collect();
        report.sweep = sweep;
        report
    }
}

/// An in-process comparator with its tenants forked and held, whose passes take turns with
/// the other comparators' ([`Context::take_turns`]).
trait Running {
    /// Workload tenants a pass works.
    fn work(&self) -> usize;
    /// One pass of the working tenants' operations.
    fn pass(&mut self, ctx: &Context<'_>, pass: Pass) -> Result<PassStats>;
    /// Drops the tenants, then the fidelity check and the memory sweep: the comparator's
    /// report, with the fastest of its read passes before and after the writes.
    fn finish(
        self: Box<Self>,
        ctx: &Context<'_>,
        reads: PassStats,
        writes: PassStats,
        reads_after: PassStats,
    ) -> Result<ApproachReport>;
}

/// [`Running`] for an [`Approach`]: the approach, its tenants and what forking them cost.
struct Held<A: Approach> {
    label: &'static str,
    kind: ApproachKind,
    approach: A,
    plan: Plan,
    tenants: Vec<A::Tenant>,
    forked: ForkStats,
    rss_growth: u64,
    /// Workload tenants worked.
    work: usize,
    /// Tenants that work them.
    slots: usize,
}

impl<A: Approach> Held<A> {
    /// Forks `approach`'s tenants as `plan` says, and holds them.
    fn start(ctx: &Context<'_>, kind: ApproachKind, approach: A, plan: Plan) -> Result<Held<A>> {
        Held::start_as(ctx, kind.label(), kind, approach, plan)
    }

    /// [`Held::start`], the passes shown as `label`'s.
    fn start_as(
        ctx: &Context<'_>,
        label: &'static str,
        kind: ApproachKind,
        approach: A,
        plan: Plan,
    ) -> Result<Held<A>> {
        let forks = if plan.reuse {
            plan.create.min(plan.work)
        } else {
            plan.create.max(plan.work)
        };
        ctx.progress
            .stage(&format!("{label}: forking tenants"), forks as u64);
        let rss = self_rss();
        let (tenants, forked) = fork_all(&approach, forks, ctx.progress)?;
        let rss_growth = self_rss().saturating_sub(rss);
        let work = if plan.reuse {
            plan.work
        } else {
            plan.work.min(tenants.len())
        };
        let slots = work.min(tenants.len());
        Ok(Held {
            label,
            kind,
            approach,
            plan,
            tenants,
            forked,
            rss_growth,
            work,
            slots,
        })
    }
}

impl<A: Approach> Running for Held<A> {
    fn work(&self) -> usize {
        self.work
    }

    fn pass(&mut self, ctx: &Context<'_>, pass: Pass) -> Result<PassStats> {
        run_pass(
            &self.approach,
            &mut self.tenants[..self.slots],
            self.work,
            ctx.workload,
            pass,
            ctx.config.workload.threads,
            ctx.progress,
        )
    }

    fn finish(
        self: Box<Self>,
        ctx: &Context<'_>,
        reads: PassStats,
        writes: PassStats,
        reads_after: PassStats,
    ) -> Result<ApproachReport> {
        let h = *self;
        let (label, work, progress) = (h.label, h.work, ctx.progress);
        drop(h.tenants);
        // Held tenants that worked several workload tenants saw each other's writes, so their
        // checksums are not each tenant's own view: the fidelity check takes fresh tenants.
        let checked = work.min(CHECKED_TENANTS);
        let checksums = if h.slots < work {
            progress.stage(&format!("{label}: fidelity, fresh tenants"), checked as u64);
            (0..checked as u64)
                .map(|id| {
                    let sum = isolated_checksum(&h.approach, ctx.workload, id);
                    progress.advance(1);
                    sum
                })
                .collect::<Result<Vec<u64>>>()?
        } else {
            reads_after
                .checksums
                .iter()
                .copied()
                .take(checked)
                .collect()
        };
        progress.stage(
            &format!("{label}: memory sweep"),
            count64(ctx.counts.len()).saturating_mul(count64(ctx.config.sweep_samples)),
        );
        let points = sweep(
            &h.approach,
            ctx.workload,
            ctx.counts,
            ctx.config.sweep_samples,
            progress,
        )?;
        let per = |bytes: i64, n: usize| bytes as f64 / n.max(1) as f64;
        let idle = per(h.forked.bytes, h.forked.tenants);
        let has_tenants = h.plan.create > 0;
        Ok(ApproachReport {
            approach: h.kind,
            label: label.to_owned(),
            isolated: h.kind.isolates(),
            held: h.plan.create,
            worked: work,
            note: h.plan.note,
            skipped: None,
            setup_ms: h.plan.setup.as_secs_f64() * 1e3,
            shared_bytes: h.plan.shared_bytes,
            create_ns: has_tenants
                .then(|| h.forked.time.as_secs_f64() * 1e9 / h.forked.tenants.max(1) as f64),
            idle_bytes: Some(idle),
            private_bytes: Some(idle + per(writes.bytes, work)),
            held_bytes: (h.forked.bytes + writes.bytes).max(0) as u64,
            rss_growth: h.rss_growth,
            reads: reads.ops,
            writes: writes.ops,
            read_mops: mops(&reads),
            write_mops: mops(&writes),
            read_after_mops: mops(&reads_after),
            base_read_mops: None,
            checksums,
            sweep: points,
        })
    }
}

/// A count as the progress bar's `u64`, saturating (a `usize` is no wider on the platforms
/// the bench runs on).
fn count64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn mops(stats: &PassStats) -> Option<f64> {
    (stats.ops > 0).then(|| stats.mops())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BaseSource, WorkloadConfig};

    #[test]
    fn the_deep_copies_make_the_same_operations_as_cowheap() {
        let config = Config {
            base: BaseSource::Synthetic {
                objects: 3_000,
                seed: 5,
            },
            workload: WorkloadConfig {
                tenants: 30,
                ops: 50,
                threads: 2,
                ..WorkloadConfig::default()
            },
            write_counts: vec![0],
            deep_copy_sample: 4,
            approaches: vec![ApproachKind::Cowheap, ApproachKind::DeepCopy],
            ..Config::default()
        };
        let report = run(&config, &()).unwrap();
        let (cow, copies) = (&report.approaches[0], &report.approaches[1]);
        assert_eq!((copies.held, copies.worked), (4, 30));
        assert_eq!(copies.worked, cow.worked);
        assert!(cow.reads > 0 && cow.writes > 0);
        assert_eq!((copies.reads, copies.writes), (cow.reads, cow.writes));
        assert_eq!(copies.checksums.len(), CHECKED_TENANTS);
        assert_eq!(copies.checksums, cow.checksums);
        assert!(report.fidelity.agree);
    }

    /// Comparators taking turns still report in the order asked for, fork() (skipped here,
    /// with no executable to probe) in its place, each with its own passes, and only
    /// cowheap with the yardstick's reads.
    #[test]
    fn comparators_taking_turns_report_in_the_order_asked() {
        use ApproachKind::{Cowheap, Fork, Plain, Rpds};
        let config = Config {
            base: BaseSource::Synthetic {
                objects: 3_000,
                seed: 7,
            },
            workload: WorkloadConfig {
                tenants: 20,
                ops: 40,
                threads: 2,
                ..WorkloadConfig::default()
            },
            write_counts: vec![0, 5],
            read_repeats: 2,
            approaches: vec![Rpds, Fork, Cowheap, Plain],
            ..Config::default()
        };
        let report = run(&config, &()).unwrap();
        let kinds: Vec<ApproachKind> = report.approaches.iter().map(|a| a.approach).collect();
        assert_eq!(kinds, config.approaches);
        let [rpds, fork, cow, plain] = &report.approaches[..] else {
            panic!("four reports");
        };
        assert!(fork.skipped.is_some());
        for a in [rpds, cow, plain] {
            assert!(a.skipped.is_none(), "{} ran", a.label);
            assert_eq!(
                (a.worked, a.reads, a.writes),
                (cow.worked, cow.reads, cow.writes)
            );
            assert!(a.read_mops.is_some() && a.write_mops.is_some() && a.read_after_mops.is_some());
            assert_eq!(a.sweep.len(), 2);
        }
        assert!(cow.reads > 0 && cow.writes > 0);
        assert!(cow.base_read_mops.is_some());
        assert!(rpds.base_read_mops.is_none() && plain.base_read_mops.is_none());
        assert_eq!(rpds.checksums, cow.checksums);
        assert!(report.fidelity.agree);
    }
}
