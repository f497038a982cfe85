//! Running an expression in one or many tenants of an image: what `cowheap run` reports.
//!
//! [`run_image`] imports an image, forks `tenants` tenants of it, and in each (in parallel,
//! on rayon's pool) compiles and runs the expression with the image's own compiler
//! ([`Vm::evaluate`], or a plain send for an image without a compiler: see
//! [`RunOptions::selector`]), then asks the result for its `printString`. The report gives
//! the first tenant's answer, how many tenants agreed, the bytecodes and sends run, the
//! wall time, and the private bytes each tenant holds after a final collection.

use crate::{Symbols, Vm, VmError};
use cowheap_forwarders::Base;
use cowheap_heap::Value;
use cowheap_tenants::Tenant;
use rayon::prelude::*;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Number of tenants, each running the expression.
    pub tenants: usize,
    /// Bytecode budget of each evaluation (and of each `printString`).
    pub budget: u64,
    /// Threads to run the tenants on; `None` for rayon's default.
    pub threads: Option<usize>,
    /// Instead of compiling the expression, send this unary selector to the SmallInteger
    /// the expression is (for images without a compiler: `--eval 20 --send benchFib`): one
    /// of the image's, an integer past them being refused ([`VmError::NotASmallInteger`]).
    pub selector: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tenants: 1,
            budget: 1_000_000_000,
            threads: None,
            selector: None,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The image could not be imported.
    #[error("importing {path}: {source}")]
    Import {
        /// The image file.
        path: PathBuf,
        /// Why.
        source: cowheap_squeak::ImportError,
    },
    /// The image cannot be run.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// `selector` was given but the expression is not an integer.
    #[error("with a selector, the expression must be an integer: {0:?}")]
    NotAnInteger(String),
    /// The thread pool could not be built.
    #[error("building the thread pool: {0}")]
    Threads(String),
    /// Memory for this many tenants (and their reports) could not be had.
    #[error("no memory for {tenants} tenants")]
    TooManyTenants {
        /// The tenant count asked for.
        tenants: usize,
    },
}

/// What one tenant did.
#[derive(Clone, Debug)]
pub struct TenantRun {
    /// The result's printString, or the error.
    pub result: Result<String, VmError>,
    /// Bytecodes run.
    pub bytecodes: u64,
    /// Sends made.
    pub sends: u64,
    /// Private bytes the tenant holds after a final collection.
    pub private_bytes: u64,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The expression.
    pub expression: String,
    /// Every tenant's run, in tenant order.
    pub tenants: Vec<TenantRun>,
    /// Wall time of the parallel part (evaluation and printString in every tenant).
    pub elapsed: Duration,
    /// Threads used.
    pub threads: usize,
}

impl RunReport {
    /// The first tenant's answer.
    pub fn result(&self) -> Option<&Result<String, VmError>> {
        self.tenants.first().map(|t| &t.result)
    }

    /// Tenants whose answer equals the first tenant's.
    pub fn agreeing(&self) -> usize {
        let Some(first) = self.result() else { return 0 };
        self.tenants.iter().filter(|t| &t.result == first).count()
    }

    /// Bytecodes run in all tenants.
    pub fn bytecodes(&self) -> u64 {
        self.tenants.iter().map(|t| t.bytecodes).sum()
    }

    /// Sends made in all tenants.
    pub fn sends(&self) -> u64 {
        self.tenants.iter().map(|t| t.sends).sum()
    }

    /// Mean private bytes per tenant.
    pub fn private_bytes_per_tenant(&self) -> f64 {
        let n = self.tenants.len().max(1) as f64;
        self.tenants
            .iter()
            .map(|t| t.private_bytes as f64)
            .sum::<f64>()
            / n
    }
}

impl RunReport {
    /// The report without the answer: the counts, throughput and private bytes (what the
    /// command line prints on standard output when the answer is an error, which goes to
    /// standard error).
    pub fn summary(&self) -> impl fmt::Display + '_ {
        Summary(self)
    }
}

/// [`RunReport::summary`].
struct Summary<'a>(&'a RunReport);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "{} tenant(s) on {} thread(s), {} agreeing; {:.3} s",
            r.tenants.len(),
            r.threads,
            r.agreeing(),
            secs
        )?;
        writeln!(
            f,
            "{} bytecodes ({:.2} M/s), {} sends ({:.2} M/s)",
            r.bytecodes(),
            r.bytecodes() as f64 / secs / 1e6,
            r.sends(),
            r.sends() as f64 / secs / 1e6
        )?;
        write!(
            f,
            "private bytes per tenant after collection: {:.0}",
            r.private_bytes_per_tenant()
        )
    }
}

/// The first tenant's answer (or `error: ...`), then [`RunReport::summary`].
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.result() {
            Some(Ok(s)) => writeln!(f, "{s}")?,
            Some(Err(e)) => writeln!(f, "error: {e}")?,
            None => writeln!(f, "no tenant ran")?,
        }
        write!(f, "{}", self.summary())
    }
}

/// Runs `expression` in `options.tenants` tenants of the image at `path`.
///
/// # Errors
/// [`RunError`] if the image cannot be imported or run; an evaluation's own error is in
/// that tenant's [`TenantRun::result`].
///
/// The command line calls it as
/// `cowheap_vm::run::run_image(&image, &expr, &RunOptions { tenants, ..Default::default() })`
/// and prints the report.
pub fn run_image(
    path: &Path,
    expression: &str,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let imported = cowheap_squeak::import(path).map_err(|source| RunError::Import {
        path: path.to_owned(),
        source,
    })?;
    let symbols = Symbols::from_base(&imported.heap);
    let base = Base::new(imported.heap);
    run_base(&base, &symbols, expression, options)
}

/// [`run_image`] on a base already imported.
///
/// # Errors
/// As [`run_image`].
pub fn run_base(
    base: &std::sync::Arc<Base>,
    symbols: &Symbols,
    expression: &str,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let receiver = match &options.selector {
        Some(_) => Some(
            expression
                .trim()
                .parse::<i64>()
                .map_err(|_| RunError::NotAnInteger(expression.to_owned()))?,
        ),
        None => None,
    };
    // Check once that the image can be run at all, and that the integer a selector is
    // sent to is one of its SmallIntegers (31 bits in a 32-bit image).
    let receiver: Option<Value> = {
        let vm = Vm::new(&Tenant::fork(base))?;
        receiver.map(|i| vm.small_integer(i)).transpose()?
    };
    // The tenants and their reports, reserved fallibly: a count past the memory is an
    // error, not the end of the process.
    let n = options.tenants;
    let too_many = |_| RunError::TooManyTenants { tenants: n };
    let mut tenants: Vec<Tenant> = Vec::new();
    tenants.try_reserve_exact(n).map_err(too_many)?;
    let mut runs: Vec<TenantRun> = Vec::new();
    runs.try_reserve_exact(n).map_err(too_many)?;
    tenants.extend((0..n).map(|_| Tenant::fork(base)));
    let one = |t: &mut Tenant| -> TenantRun {
        let mut vm = match Vm::new(t) {
            Ok(vm) => vm,
            Err(e) => {
                return TenantRun {
                    result: Err(e),
                    bytecodes: 0,
                    sends: 0,
                    private_bytes: 0,
                };
            }
        };
        let value = match (&options.selector, receiver) {
            (Some(sel), Some(r)) => vm.send_named(t, symbols, r, sel, &[], options.budget),
            _ => vm.evaluate(t, symbols, expression, options.budget),
        };
        let result = value.and_then(|v| vm.print_string(t, symbols, v, options.budget));
        // The run's garbage goes, weak slots held as the run's own collections hold them
        // (a mark the allocator refuses frees nothing, and the figures say so).
        let _ = vm.collect(t);
        let st = vm.stats();
        TenantRun {
            result,
            bytecodes: st.bytecodes,
            sends: st.sends,
            private_bytes: t.stats().private_bytes,
        }
    };
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = options.threads {
            b = b.num_threads(n);
        }
        b.build().map_err(|e| RunError::Threads(e.to_string()))?
    };
    let start = Instant::now();
    pool.install(|| tenants.par_iter_mut().map(one).collect_into_vec(&mut runs));
    let elapsed = start.elapsed();
    Ok(RunReport {
        expression: expression.to_owned(),
        tenants: runs,
        elapsed,
        threads: pool.current_num_threads(),
    })
}
