//! `cowheap bench`: many tenants on one base, side by side with the alternatives.
//!
//! The bench runs one workload ([`workload`]) on five ways of giving many tenants their own
//! view of one base, in the same process run, and reports what each costs:
//!
//! | comparator | a tenant is | module |
//! | --- | --- | --- |
//! | cowheap | a [`Tenant`](cowheap::Tenant) of one shared [`Base`](cowheap::Base) | [`cow`] |
//! | plain heap | nothing: every tenant writes one shared heap (no isolation; the floor) | [`plain`] |
//! | deep copy | a full copy of the base (a sample of tenants) | [`deep_copy`] |
//! | fork() | a child process that inherits the base (a sample, one at a time) | [`fork`] |
//! | rpds | a clone of one persistent vector of objects | [`rpds`] |
//!
//! For each: the time to create a tenant; the bytes a tenant holds when idle and after its
//! writes, counted by a global allocator ([`alloc`]) or, for fork(), the kernel's
//! `Private_Dirty`; the throughput of reads on objects no tenant has written, of the writes,
//! and of the same reads after every tenant wrote; and a sweep of private bytes per tenant
//! against writes per tenant (0, 10, 100, ... 100,000). The reads made after the writes give
//! each tenant's own values back, and the comparators that isolate tenants must agree on them
//! ([`Report::fidelity`]).
//!
//! [`run`] does it all from a [`Config`]; [`Report`] prints the tables and writes JSON and an
//! SVG chart. Memory figures need [`alloc::CountingAlloc`] installed as the global allocator,
//! as the `cowheap` binary does.
//!
//! ```
//! use cowheap_bench::{self as bench, ApproachKind, BaseSource, Config, WorkloadConfig};
//!
//! let config = Config {
//!     base: BaseSource::Synthetic { objects: 5_000, seed: 3 },
//!     workload: WorkloadConfig { tenants: 20, ops: 100, ..WorkloadConfig::default() },
//!     write_counts: vec![0, 10],
//!     approaches: vec![ApproachKind::Cowheap, ApproachKind::DeepCopy, ApproachKind::Rpds],
//!     ..Config::default()
//! };
//! let report = bench::run(&config, &()).unwrap();
//! assert_eq!(report.approaches.len(), 3);
//! assert!(report.fidelity.agree);
//! assert!(report.table().contains("cowheap"));
//! ```

pub mod alloc;
pub mod approach;
pub mod cow;
pub mod deep_copy;
// fork() and the kernel's per-process page counts: Unix only. Elsewhere the fork comparator
// reports itself skipped.
#[cfg(unix)]
pub mod fork;
pub mod plain;
pub mod proc_status;
mod progress;
pub mod report;
pub mod rpds;
mod run;
pub mod workload;

pub use approach::Approach;
pub use progress::Progress;
pub use report::{ApproachReport, Fidelity, Report};
pub use run::run;
pub use workload::{Op, SizeMix, Skew, Workload, WorkloadConfig, Zipf};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The result type of the bench.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the bench could not run or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option out of range, or a combination that cannot run.
    #[error("--{option}: {reason}")]
    BadOption {
        /// The option, as spelled on the command line.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `--base FILE` could not be opened as a base.
    #[error(transparent)]
    Open(#[from] cowheap::OpenError),
    /// A slot index past the end of an object in a comparator's heap.
    #[error("slot {slot} of object @{object} is out of range")]
    OutOfRange {
        /// The object's index.
        object: u64,
        /// The slot asked for.
        slot: u64,
    },
    /// An error of the base heap.
    #[error(transparent)]
    Heap(#[from] cowheap::heap::Error),
    /// An error of a cowheap tenant.
    #[error(transparent)]
    Tenant(#[from] cowheap::tenants::Error),
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (it is as it was).
    #[error("{what}: {source}")]
    Write {
        /// What was being written.
        what: &'static str,
        /// The error.
        #[source]
        source: cowheap::heap::FileError,
    },
    /// The fork probe failed.
    #[error("the fork probe failed: {reason}")]
    Probe {
        /// What it reported.
        reason: String,
    },
    /// Reading or writing JSON failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing the chart failed.
    #[error("drawing the chart: {0}")]
    Plot(String),
    /// A worker thread panicked.
    #[error("a worker thread panicked")]
    WorkerPanicked,
    /// The run would hold more memory than the machine has available
    /// ([`Config::memory_estimate`]); nothing was run.
    #[error(
        "this run would hold about {} MiB at its peak, but {} MiB are available: lower \
         --objects, --tenants, --active, --ops or --deep-copies, leave comparators out with \
         --approaches, or pass --no-memory-check",
        needed >> 20,
        available >> 20
    )]
    Memory {
        /// The estimate, in bytes.
        needed: u64,
        /// The memory available to the process, in bytes
        /// ([`proc_status::available_memory`]).
        available: u64,
    },
}

/// Where the base comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseSource {
    /// The embedded default: `synth::image(objects, seed)`, shaped like a Smalltalk image.
    Synthetic {
        /// Objects in the base (at least a few hundred).
        objects: usize,
        /// Seed of the base.
        seed: u64,
    },
    /// A cowheap image file, mapped and verified ([`BaseHeap::open`](cowheap::BaseHeap::open)),
    /// or a Squeak, Pharo or Cuis image, imported (`cowheap::squeak::import`).
    File(PathBuf),
}

/// The five comparators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApproachKind {
    /// cowheap tenants.
    Cowheap,
    /// One shared plain heap, no isolation: the floor.
    Plain,
    /// A full deep copy of the base per tenant.
    DeepCopy,
    /// A child process per tenant.
    Fork,
    /// A clone of a persistent vector per tenant.
    Rpds,
}

impl ApproachKind {
    /// Every comparator, in the order the bench runs and reports them.
    pub const ALL: [ApproachKind; 5] = [
        ApproachKind::Cowheap,
        ApproachKind::Plain,
        ApproachKind::DeepCopy,
        ApproachKind::Fork,
        ApproachKind::Rpds,
    ];

    /// The name in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            ApproachKind::Cowheap => "cowheap",
            ApproachKind::Plain => "plain heap",
            ApproachKind::DeepCopy => "deep copy",
            ApproachKind::Fork => "fork()",
            ApproachKind::Rpds => "rpds",
        }
    }

    /// True if each tenant sees only its own writes.
    pub fn isolates(self) -> bool {
        self != ApproachKind::Plain
    }
}

impl fmt::Display for ApproachKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApproachKind::Cowheap => "cowheap",
            ApproachKind::Plain => "plain",
            ApproachKind::DeepCopy => "deep-copy",
            ApproachKind::Fork => "fork",
            ApproachKind::Rpds => "rpds",
        })
    }
}

impl FromStr for ApproachKind {
    type Err = Error;

    /// `cowheap`, `plain`, `deep-copy`, `fork` or `rpds`.
    ///
    /// ```
    /// use cowheap_bench::ApproachKind;
    /// assert_eq!("deep-copy".parse::<ApproachKind>().unwrap(), ApproachKind::DeepCopy);
    /// assert!("mmap".parse::<ApproachKind>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<ApproachKind> {
        ApproachKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| Error::BadOption {
                option: "approaches",
                reason: format!(
                    "unknown comparator {s:?} (say cowheap, plain, deep-copy, fork or rpds)"
                ),
            })
    }
}

/// Most objects in a synthetic base (`--objects`): about 7 GiB of base (70 bytes an object).
pub const MAX_OBJECTS: usize = 100_000_000;

/// Most operations per working tenant (`--ops`): each worker thread holds one tenant's
/// operations at a time, 24 bytes each, twice (all of them, and the pass's share).
pub const MAX_OPS: usize = 10_000_000;

/// Most worker threads (`--threads`).
pub const MAX_THREADS: usize = 1_024;

/// Most fresh tenants measured per point of the memory sweep (`--sweep-samples`).
pub const MAX_SWEEP_SAMPLES: usize = 1_000;

/// Most rounds of each read pass (`--repeats`).
pub const MAX_READ_REPEATS: usize = 1_000;

/// At most this many tenants run the workload unless `--active` says otherwise; the rest
/// are forked and stay idle.
pub const DEFAULT_ACTIVE_LIMIT: usize = 10_000;

/// Everything a bench run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The base.
    pub base: BaseSource,
    /// The tenants and their work.
    pub workload: WorkloadConfig,
    /// Tenants that run the workload (the first ones); `None` for all of them up to
    /// [`DEFAULT_ACTIVE_LIMIT`]. The others are forked and held idle.
    pub active: Option<usize>,
    /// Writes per tenant at which the memory sweep measures private bytes; counts above the
    /// number of candidate objects are lowered to it.
    pub write_counts: Vec<usize>,
    /// Fresh tenants measured per sweep point.
    pub sweep_samples: usize,
    /// Most deep copies made (each is the size of the base); at least one if
    /// [`ApproachKind::DeepCopy`] runs.
    pub deep_copy_sample: usize,
    /// Most fork() children run for the workload (one at a time); at least one if
    /// [`ApproachKind::Fork`] runs.
    pub fork_sample: usize,
    /// Rounds of each read pass, every in-process comparator taking its turn in each; the
    /// fastest of each comparator counts (reads change nothing later passes see).
    pub read_repeats: usize,
    /// The comparators to run; the report lists them in this order (the in-process ones
    /// take turns in each pass, fork() runs after them).
    pub approaches: Vec<ApproachKind>,
    /// The `cowheap` executable, for the fork probe; fork() is skipped without it.
    #[serde(skip)]
    pub probe_exe: Option<PathBuf>,
    /// Refuse, before anything is built, a run whose [`Config::memory_estimate`] passes
    /// the memory available ([`proc_status::available_memory`]). On by default.
    #[serde(default = "yes")]
    pub memory_check: bool,
}

/// `true`, as a serde default.
fn yes() -> bool {
    true
}

/// Bytes a synthetic base holds per object (`synth::image` of a million objects holds
/// 72.7 MB), for the memory estimate before it is built.
pub const SYNTHETIC_BYTES_PER_OBJECT: u64 = 73;

impl BaseSource {
    /// Builds or opens the base. Time: O(objects) for both (a file is verified in full).
    ///
    /// ```
    /// use cowheap_bench::BaseSource;
    /// let base = BaseSource::Synthetic { objects: 1_000, seed: 2 }.load().unwrap();
    /// assert!(base.len() >= 1_000);
    /// assert!(BaseSource::File("/no/such/image".into()).load().is_err());
    /// ```
    pub fn load(&self) -> Result<cowheap::heap::BaseHeap> {
        self.load_with(cowheap::heap::Verification::Full)
    }

    /// Builds the base, or opens the file checking it as `verification` says. The fork probe
    /// opens with [`Verification::Trust`](cowheap::heap::Verification::Trust): the bench has
    /// verified the same file already, and full verification runs on a thread pool, which a
    /// process that forks must not have.
    pub fn load_with(
        &self,
        verification: cowheap::heap::Verification,
    ) -> Result<cowheap::heap::BaseHeap> {
        match self {
            BaseSource::Synthetic { objects, seed } => {
                Ok(cowheap::heap::synth::image(*objects, *seed))
            }
            BaseSource::File(path) => Ok(cowheap::open_base(path, verification)?.0),
        }
    }

    /// Where the base comes from, in words.
    pub fn describe(&self) -> String {
        match self {
            BaseSource::Synthetic { seed, .. } => {
                format!("synthetic Smalltalk-shaped image, seed {seed}")
            }
            BaseSource::File(path) => format!("image file {}", path.display()),
        }
    }
}

impl Default for Config {
    /// The default scenario: a synthetic base of a million objects, the default workload,
    /// every comparator except fork() (which needs [`Config::probe_exe`]; the command sets it).
    fn default() -> Self {
        Config {
            base: BaseSource::Synthetic {
                objects: 1_000_000,
                seed: 1,
            },
            workload: WorkloadConfig::default(),
            active: None,
            write_counts: vec![0, 10, 100, 1_000, 10_000, 100_000],
            sweep_samples: 2,
            deep_copy_sample: 4,
            fork_sample: 16,
            read_repeats: 3,
            approaches: ApproachKind::ALL.to_vec(),
            probe_exe: None,
            memory_check: true,
        }
    }
}

impl Config {
    /// The number of tenants that run the workload.
    pub fn active_tenants(&self) -> usize {
        self.active
            .unwrap_or(DEFAULT_ACTIVE_LIMIT)
            .min(self.workload.tenants)
    }

    /// About how many bytes the run holds at its peak, for a base that holds `base_bytes`
    /// in `objects` objects: a model of what each comparator holds at once, fitted to the
    /// peak resident sets of runs of a million-object base (the defaults: 791 MiB, estimated
    /// 777; cowheap alone 216 MiB, the plain heap 265, four deep copies 540, eight 817, rpds
    /// 367; two million objects, every comparator, 1,413 MiB, estimated 1,438). It counts every write as
    /// a distinct object (a skewed workload writes fewer), so it errs high. Time: O(1).
    ///
    /// - Building a synthetic base takes about three times what the base then holds.
    /// - Past that, the base; the plain heap one more base; the deep copies one more than
    ///   their count (the flat original); rpds two and a half (its trie and boxed objects).
    /// - fork() three bases more: its probe is a process of its own, which builds the same
    ///   base and a plain copy of it while this one holds its own (the peaks above are this
    ///   process's alone: the defaults' whole estimate is 982 MiB).
    /// - Per tenant forked, 400 bytes (cowheap's and rpds's together).
    /// - Per working tenant, each distinct object written: the object and 40 bytes in
    ///   cowheap; the object and 1 KiB (the trie's path) in rpds.
    /// - Each worker thread's operations: 48 bytes each.
    ///
    /// ```
    /// use cowheap_bench::{ApproachKind, Config};
    /// let c = Config::default();
    /// let base = 72_662_864; // a million synthetic objects
    /// let all = c.memory_estimate(base, 1_000_000);
    /// assert!(all > 600 << 20 && all < 1200 << 20);
    /// let alone = Config { approaches: vec![ApproachKind::Cowheap], ..Config::default() };
    /// assert!(alone.memory_estimate(base, 1_000_000) < all / 2);
    /// ```
    pub fn memory_estimate(&self, base_bytes: u64, objects: u64) -> u64 {
        let runs = |k| self.approaches.contains(&k);
        let n = |x: usize| u64::try_from(x).unwrap_or(u64::MAX);
        let b = base_bytes;
        let mut bases = 1.0;
        if runs(ApproachKind::Plain) {
            bases += 1.0;
        }
        let active = n(self.active_tenants());
        if runs(ApproachKind::DeepCopy) {
            bases += n(self.deep_copy_sample).min(active.max(1)) as f64 + 1.0;
        }
        if runs(ApproachKind::Rpds) {
            bases += 2.5;
        }
        let mut held = (b as f64 * f64::max(bases, 3.0)) as u64;
        if runs(ApproachKind::Fork) {
            // The probe process builds its own base and plain copy beside this process's.
            held = held.saturating_add(b.saturating_mul(3));
        }
        let object = b / objects.max(1);
        let writes = (self.workload.ops as f64 * self.workload.write_share) as u64;
        let distinct = writes.min(objects);
        let mut per_write = 0u64;
        if runs(ApproachKind::Cowheap) {
            per_write = per_write.saturating_add(object.saturating_add(40));
        }
        if runs(ApproachKind::Rpds) {
            per_write = per_write.saturating_add(object.saturating_add(1024));
        }
        held.saturating_add(n(self.workload.tenants).saturating_mul(400))
            .saturating_add(active.saturating_mul(distinct).saturating_mul(per_write))
            .saturating_add(
                n(self.workload.threads)
                    .saturating_mul(n(self.workload.ops))
                    .saturating_mul(48),
            )
    }

    /// [`Error::Memory`] if [`Config::memory_estimate`] passes the memory available (when
    /// [`Config::memory_check`] is on and the system says what is available).
    pub fn check_memory(&self, base_bytes: u64, objects: u64) -> Result<()> {
        if !self.memory_check {
            return Ok(());
        }
        let Some(available) = proc_status::available_memory() else {
            return Ok(());
        };
        let needed = self.memory_estimate(base_bytes, objects);
        if needed > available {
            return Err(Error::Memory { needed, available });
        }
        Ok(())
    }

    /// Checks every option's range.
    pub fn validate(&self) -> Result<()> {
        self.workload.validate()?;
        let bad = |option, reason: &str| {
            Err(Error::BadOption {
                option,
                reason: reason.to_owned(),
            })
        };
        if self.sweep_samples == 0 {
            return bad("sweep-samples", "at least one sample is needed");
        }
        if self.sweep_samples > MAX_SWEEP_SAMPLES {
            return bad("sweep-samples", "at most 1,000 samples");
        }
        if self.read_repeats > MAX_READ_REPEATS {
            return bad("repeats", "at most 1,000 rounds");
        }
        if self.approaches.is_empty() {
            return bad("approaches", "name at least one comparator");
        }
        // A comparator named twice would run twice: two rows of one name in every table,
        // and a second cowheap whose first writes meet the marks the first one's set.
        if let Some(twice) = self
            .approaches
            .iter()
            .enumerate()
            .find_map(|(i, k)| self.approaches[..i].contains(k).then_some(k))
        {
            return Err(Error::BadOption {
                option: "approaches",
                reason: format!("{twice} is named twice: name each comparator once"),
            });
        }
        // With no working tenant every read and write column would be a figure never
        // measured (`--ops 0` is the way to run forks and memory alone).
        if self.active == Some(0) {
            return bad(
                "active",
                "at least one tenant must run the workload (--ops 0 runs no operation)",
            );
        }
        // With no sample the comparator's rows would be figures never measured.
        if self.deep_copy_sample == 0 && self.approaches.contains(&ApproachKind::DeepCopy) {
            return bad(
                "deep-copies",
                "at least one deep copy is needed to measure the deep copies (or leave \
                 deep-copy out of --approaches)",
            );
        }
        if self.fork_sample == 0 && self.approaches.contains(&ApproachKind::Fork) {
            return bad(
                "forks",
                "at least one fork() child is needed to measure fork() (or leave fork out \
                 of --approaches)",
            );
        }
        if let BaseSource::Synthetic { objects, .. } = self.base
            && objects > MAX_OBJECTS
        {
            return bad(
                "objects",
                "a synthetic base holds at most 100,000,000 objects",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 72_662_864;
    const OBJECTS: u64 = 1_000_000;

    #[test]
    fn the_memory_estimate_grows_with_what_is_held_and_never_wraps() {
        let c = Config::default();
        let at = |c: &Config| c.memory_estimate(BASE, OBJECTS);
        let more_copies = Config {
            deep_copy_sample: 8,
            ..c.clone()
        };
        // Eight deep copies held 277 MiB more than four.
        let d = at(&more_copies) - at(&c);
        assert!(d > 250 << 20 && d < 350 << 20, "{d}");
        let mut more_ops = c.clone();
        more_ops.workload.ops *= 10;
        assert!(at(&more_ops) > at(&c));
        let mut most = c.clone();
        most.workload.tenants = usize::MAX;
        most.workload.ops = usize::MAX;
        most.workload.threads = usize::MAX;
        most.active = Some(usize::MAX);
        assert_eq!(most.memory_estimate(u64::MAX, 1), u64::MAX);
        // A synthetic base of a million objects holds about what the constant says.
        let heap = cowheap::heap::synth::image(10_000, 1);
        let per = heap.memory_bytes() as u64 / heap.len() as u64;
        assert!(per.abs_diff(SYNTHETIC_BYTES_PER_OBJECT) < 15, "{per}");
    }

    #[test]
    fn the_memory_check_can_be_turned_off() {
        let mut c = Config::default();
        c.workload.ops = MAX_OPS;
        c.active = Some(DEFAULT_ACTIVE_LIMIT);
        c.workload.tenants = DEFAULT_ACTIVE_LIMIT;
        if proc_status::available_memory().is_some() {
            assert!(matches!(
                c.check_memory(BASE, OBJECTS),
                Err(Error::Memory { .. })
            ));
        }
        c.memory_check = false;
        assert!(c.check_memory(BASE, OBJECTS).is_ok());
    }
}
